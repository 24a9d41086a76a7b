-- Agreement of data representation, per dataset, stage and model pair: over the examples
-- both models embedded, the mean and variance (population) of the per-example Jaccard of
-- the two models' k-nearest-neighbour sets (paper Table 2), the mean mutual-kNN overlap
-- |A and B| / k, the mean Jaccard two random k-sets of the other n - 1 examples would
-- reach (chance_jaccard, see chance_knn_jaccard), and the mean and variance of Spearman's
-- rho of the two lists' ranks over their union (rank_n: the examples where it is defined;
-- see knn_agreement_examples) with its chance level (chance_rank_rho). Any k up to the K_max
-- the lists were computed with; datasets whose lists are shorter than k are left out.
create or replace macro knn_agreement(k) as table
with pairs as (
    select
        dataset,
        stage,
        model_i,
        model_j,
        k as k,
        count(*) as n,
        avg(jaccard) as mean_jaccard,
        var_pop(jaccard) as var_jaccard,
        avg(shared / k) as mutual_knn,
        count(rank_rho) as rank_n,
        avg(rank_rho) as mean_rank_rho,
        var_pop(rank_rho) as var_rank_rho
    from knn_agreement_examples(k)
    group by dataset, stage, model_i, model_j
)
select
    dataset, stage, model_i, model_j, k, n, mean_jaccard, var_jaccard, mutual_knn,
    chance_knn_jaccard(k, n - 1) as chance_jaccard,
    rank_n, mean_rank_rho, var_rank_rho,
    chance_knn_rank_rho(k, n - 1) as chance_rank_rho
from pairs;
