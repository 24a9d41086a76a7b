-- The mean Spearman's rho over the union (see knn_agreement_examples) of two independent,
-- uniformly random k-lists of m items: the chance level of the neighbour rank agreement.
-- Their overlap s is hypergeometric and, given s, rho is linear in the shared ids' rank
-- sums, whose expectations are those of independent uniform ranks: E[p] = E[q] = (k+1)/2.
-- Over the overlaps where rho is defined (a union of more than one id). It is below 0:
-- ids one list holds and the other does not rank high in one and low in the other.
create or replace macro chance_knn_rank_rho(k, m) as (
    with by_overlap as (
        select
            s,
            exp(
                lgamma(k + 1) - lgamma(s + 1) - lgamma(k - s + 1)
                + lgamma(m - k + 1) - lgamma(k - s + 1) - lgamma(m - 2 * k + s + 1)
                - (lgamma(m + 1) - lgamma(k + 1) - lgamma(m - k + 1))
            ) as p,
            2 * k - s as u,
            (k + 1 + 2 * k - s) / 2 as t,
            k * (k + 1) / 2 as total
        from range(0, k + 1) r(s)
        where k <= m and k - s <= m - k
    ),
    expected as (
        select
            p,
            (total + (k - s) * t) / u as mean_rank,
            k * (k + 1) * (2 * k + 1) / 6 + (k - s) * t * t as squares,
            s * (k + 1) * (k + 1) / 4 + 2 * t * (total - s * (k + 1) / 2) as cross_sum,
            u
        from by_overlap
    )
    select sum(p * (cross_sum - u * mean_rank * mean_rank) / (squares - u * mean_rank * mean_rank)) / sum(p)
    from expected
    where squares - u * mean_rank * mean_rank > 1e-9
);
