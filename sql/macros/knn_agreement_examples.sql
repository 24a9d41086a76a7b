-- Per dataset, stage, model pair and example both models embedded (its idx, and its
-- example_id as every per-example macro names it): the two k-nearest neighbour sets'
-- overlap (shared), sizes and Jaccard (a list read as a set: a repeated id counts once),
-- and rank_rho, Spearman's rho of the two lists' ranks over their union: each list ranks
-- its own ids 1..k and ties the ids only the other holds at the bottom (their mid-rank);
-- null where a list repeats an id or the union holds one id. knn_agreement(k) and the
-- bootstrap intervals aggregate these rows; ce evaluates the same values for Table 2 and
-- sweeps with a kernel over all models at once (ce.query.knn), checked equal in the tests.
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
        len(list_distinct(a.nearest)) as size_i,
        len(list_distinct(b.nearest)) as size_j,
        list_intersect(a.nearest, b.nearest) as both_hold,
        a.nearest as list_i,
        b.nearest as list_j
    from checked a
    join checked b
        on a.dataset = b.dataset and a.stage = b.stage and a.idx = b.idx and a.model < b.model
),
ranked as (  -- the shared ids' count s and the sums of their ranks p (in list i), q (in j), p*q
    select
        * exclude (both_hold, list_i, list_j),
        len(both_hold) as shared,
        coalesce(list_sum(list_transform(both_hold, lambda x: list_position(list_i, x))), 0) as sp,
        coalesce(list_sum(list_transform(both_hold, lambda x: list_position(list_j, x))), 0) as sq,
        coalesce(list_sum(list_transform(
            both_hold, lambda x: list_position(list_i, x) * list_position(list_j, x))), 0) as spq
    from per_example
),
spearman as (  -- each list's ranks over the union u: 1..k, and the tie t for the other's ids
    select *, 2 * k - shared as u, (k + 1 + 2 * k - shared) / 2 as t, k * (k + 1) / 2 as total
    from ranked
),
moments as (
    select
        *,
        (total + (k - shared) * t) / u as mean_rank,
        k * (k + 1) * (2 * k + 1) / 6 + (k - shared) * t * t as squares,
        spq + t * (total - sp) + t * (total - sq) as cross_sum
    from spearman
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
    shared / (size_i + size_j - shared) as jaccard,
    case when size_i = k and size_j = k and squares - u * mean_rank * mean_rank > 1e-9
        then (cross_sum - u * mean_rank * mean_rank) / (squares - u * mean_rank * mean_rank)
    end as rank_rho
from moments;
