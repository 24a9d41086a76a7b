-- The 95% Wilson score interval of a proportion of `hits` in `n` trials, as a struct
-- {lo, hi}; null for n = 0 (no proportion). Wilson rather than the normal approximation:
-- it stays inside [0, 1] and is honest at 0 and n hits and for small n.
create or replace macro wilson_interval(hits, n) as
case when n > 0 then {
    'lo': greatest(0.0, (hits / n + 1.96 ** 2 / (2 * n)
        - 1.96 * sqrt(hits / n * (1 - hits / n) / n + 1.96 ** 2 / (4 * n * n))) / (1 + 1.96 ** 2 / n)),
    'hi': least(1.0, (hits / n + 1.96 ** 2 / (2 * n)
        + 1.96 * sqrt(hits / n * (1 - hits / n) / n + 1.96 ** 2 / (4 * n * n))) / (1 + 1.96 ** 2 / n))
} end;
