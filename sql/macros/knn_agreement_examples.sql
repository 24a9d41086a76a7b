-- Per dataset, stage, model pair and example both models embedded (its idx, and its
-- example_id as every per-example macro names it): the two k-nearest neighbour sets'
-- overlap (shared), sizes and Jaccard. knn_agreement(k) and the bootstrap intervals
-- aggregate these rows.
create or replace macro knn_agreement_examples(k) as table
with lists as (  -- lists shorter than k (datasets of at most k examples) are left out
    -- k <= list_head_length() reads only the narrow column neighbors_head (the first HEAD
    -- ids, see schema.py); k is a constant, so DuckDB drops the branch that does not apply unread
    select dataset, stage, model, idx, example_id, neighbors_head[1:k] as nearest,
        len(neighbors_head) >= k as long_enough
    from neighbors
    where k <= list_head_length()
    union all
    select dataset, stage, model, idx, example_id, neighbors[1:k] as nearest, len(neighbors) >= k as long_enough
    from neighbors
    where k > list_head_length()
),
checked as (
    select *
    from lists
    where case
        when k < 1 or k > (select max(k_max) from list_limits where kind = 'neighbors') then error(
            'knn_agreement: k = ' || k || ' is outside 1..'
            || (select max(k_max) from list_limits where kind = 'neighbors')
            || ' (the largest K_max in the store); use a smaller k or recompute with'
            || ' ce neighbors --k-max')
        else long_enough
    end
),
per_example as (
    select
        a.dataset,
        a.stage,
        a.model as model_i,
        b.model as model_j,
        a.idx,
        a.example_id,
        len(a.nearest) as size_i,
        len(b.nearest) as size_j,
        len(list_filter(a.nearest, lambda x: list_contains(b.nearest, x))) as shared
    from checked a
    join checked b
        on a.dataset = b.dataset and a.stage = b.stage and a.idx = b.idx and a.model < b.model
)
select
    dataset,
    stage,
    model_i,
    model_j,
    idx,
    example_id,
    shared,
    size_i,
    size_j,
    shared / (size_i + size_j - shared) as jaccard
from per_example;
