-- The Jaccard two independent, uniformly random k-subsets of m items reach on average:
-- the chance level of the k-NN agreement (m = the other examples a neighbour can be).
-- Their overlap s is hypergeometric; the mean of s / (2k - s) over it.
create or replace macro chance_knn_jaccard(k, m) as (
    select sum(
        exp(
            lgamma(k + 1) - lgamma(s + 1) - lgamma(k - s + 1)
            + lgamma(m - k + 1) - lgamma(k - s + 1) - lgamma(m - 2 * k + s + 1)
            - (lgamma(m + 1) - lgamma(k + 1) - lgamma(m - k + 1))
        ) * s / (2 * k - s)
    )
    from range(0, k + 1) t(s)
    where k <= m and k - s <= m - k
);
