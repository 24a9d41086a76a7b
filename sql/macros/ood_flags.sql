-- Per model, stage (the embeddings the features come from), bank, test dataset and test
-- example: whether the model flags it OOD (its distance to the k-th bank neighbour is above
-- the tpr-quantile of the model's id_val distances, so a share tpr of in-distribution points
-- is kept); id_val names the in-distribution data the threshold came from, threshold is the
-- threshold itself.
create or replace macro ood_flags(k, tpr := 0.95) as table
with heads as (  -- small k reads only the narrow column distances_head (see knn_agreement)
    select model, stage, bank, dataset, example_id, role, source, distances_head[k] as distance,
        len(distances_head) >= k as long_enough
    from ood_scores
    where k <= list_head_length()
    union all
    select model, stage, bank, dataset, example_id, role, source, distances[k] as distance,
        len(distances) >= k as long_enough
    from ood_scores
    where k > list_head_length()
),
scored as (  -- scores with fewer than k distances (banks of fewer than k) are left out
    select model, stage, bank, dataset, example_id, role, source, distance
    from heads
    where case
        when tpr <= 0 or tpr >= 1 then error(
            'ood_agreement: tpr = ' || tpr || ' must lie strictly between 0 and 1')
        when k < 1 or k > (select max(k_max) from list_limits where kind = 'ood_scores') then error(
            'ood_agreement: k = ' || k || ' is outside 1..'
            || (select max(k_max) from list_limits where kind = 'ood_scores')
            || ' (the largest K_max in the store); use a smaller k or rerun ce ood --k-max')
        else long_enough
    end
),
thresholds as (
    select model, stage, bank, dataset, any_value(source) as id_val,
        quantile_cont(distance, tpr) as threshold
    from scored
    where role = 'id_val'
    group by model, stage, bank, dataset
)
select s.model, s.stage, s.bank, s.dataset, t.id_val, s.example_id, t.threshold,
    s.distance > t.threshold as ood
from scored s
join thresholds t using (model, stage, bank, dataset)
where s.role = 'test';
