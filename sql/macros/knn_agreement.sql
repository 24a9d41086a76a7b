-- Agreement of data representation, per dataset, stage and model pair: over the examples
-- both models embedded, the mean and variance (population) of the per-example Jaccard of
-- the two models' k-nearest-neighbour sets (paper Table 2), and the mean mutual-kNN overlap
-- |A and B| / k, and the mean Jaccard two random k-sets of the other n - 1 examples would
-- reach (chance_jaccard, see chance_knn_jaccard). Any k up to the K_max the lists were computed with; datasets whose lists
-- are shorter than k are left out.
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
        avg(shared / k) as mutual_knn
    from knn_agreement_examples(k)
    group by dataset, stage, model_i, model_j
)
select *, chance_knn_jaccard(k, n - 1) as chance_jaccard
from pairs;
