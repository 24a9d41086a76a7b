-- Agreement of data representation, per dataset, stage and model pair: over the examples
-- both models embedded, the mean and variance (population) of the per-example Jaccard of
-- the two models' k-nearest-neighbour sets (paper Table 2), and the mean mutual-kNN overlap
-- |A and B| / k. Any k up to the K_max the lists were computed with; datasets whose lists
-- are shorter than k are left out.
create or replace macro knn_agreement(k) as table
with lists as (  -- lists shorter than k (datasets of at most k examples) are left out
    select dataset, stage, model, idx, neighbors[1:k] as nearest
    from neighbors
    where case
        when k < 1 or k > (select max(len(neighbors)) from neighbors) then error(
            'knn_agreement: k = ' || k || ' is outside 1..'
            || (select max(len(neighbors)) from neighbors)
            || ' (the largest K_max in the store); use a smaller k or recompute with'
            || ' ce neighbors --k-max')
        else len(neighbors) >= k
    end
),
per_example as (
    select
        a.dataset,
        a.stage,
        a.model as model_i,
        b.model as model_j,
        len(a.nearest) as size_i,
        len(b.nearest) as size_j,
        len(list_filter(a.nearest, lambda x: list_contains(b.nearest, x))) as shared
    from lists a
    join lists b
        on a.dataset = b.dataset and a.stage = b.stage and a.idx = b.idx and a.model < b.model
)
select
    dataset,
    stage,
    model_i,
    model_j,
    k as k,
    count(*) as n,
    avg(shared / (size_i + size_j - shared)) as mean_jaccard,
    var_pop(shared / (size_i + size_j - shared)) as var_jaccard,
    avg(shared / k) as mutual_knn
from per_example
group by dataset, stage, model_i, model_j;
