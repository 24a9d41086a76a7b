-- Calibration per model and dataset, over the examples with an answer distribution and a
-- known correctness: the confidence is the distribution's largest probability; ECE with 15
-- equal-width confidence bins (the mean over bins of |accuracy - mean confidence|, weighted
-- by the bin's share of examples), MCE (the largest of those gaps over non-empty bins), and
-- the Brier score (mean over examples of the summed squared error of the distribution to
-- the one-hot gold label, over the examples whose gold label is known).
create or replace macro calibration() as table
with scored as (
    select
        p.model, p.dataset, p.correct,
        list_max(p.probs) as confidence,
        least(floor(list_max(p.probs) * 15), 14)::int as bin,
        case when x.label between 0 and len(p.probs) - 1 then
            list_sum(list_transform(p.probs, lambda q, c: (q - if(c - 1 = x.label, 1.0, 0.0)) ** 2))
        end as brier
    from predictions p
    left join examples x on x.dataset = p.dataset and x.example_id = p.example_id
    where p.correct is not null and len(p.probs) > 0
),
bins as (
    select model, dataset, bin, count(*) as n, avg(correct::int) as accuracy, avg(confidence) as confidence
    from scored
    group by all
),
gaps as (
    select model, dataset, sum(n) as n, sum(n * abs(accuracy - confidence)) / sum(n) as ece,
        max(abs(accuracy - confidence)) as mce
    from bins
    group by all
)
select g.model, g.dataset, g.n, s.accuracy, s.confidence, g.ece, g.mce, s.brier_n, s.brier
from gaps g
join (
    select model, dataset, avg(correct::int) as accuracy, avg(confidence) as confidence,
        count(brier) as brier_n, avg(brier) as brier
    from scored
    group by all
) s using (model, dataset);
