-- Per bank, test dataset, model pair and test example: whether each model flags it OOD
-- (distance to the k-th bank neighbour above the tpr-quantile of its id_val distances).
-- ood_agreement(k, tpr) and the bootstrap intervals aggregate these rows.
create or replace macro ood_agreement_examples(k, tpr := 0.95) as table
with scored as (  -- scores with fewer than k distances (banks of fewer than k) are left out
    select model, bank, dataset, example_id, role, source, distances[k] as distance
    from ood_scores
    where case
        when tpr <= 0 or tpr >= 1 then error(
            'ood_agreement: tpr = ' || tpr || ' must lie strictly between 0 and 1')
        when k < 1 or k > (select max(len(distances)) from ood_scores) then error(
            'ood_agreement: k = ' || k || ' is outside 1..'
            || (select max(len(distances)) from ood_scores)
            || ' (the largest K_max in the store); use a smaller k or rerun ce ood --k-max')
        else len(distances) >= k
    end
),
thresholds as (
    select model, bank, dataset, any_value(source) as id_val,
        quantile_cont(distance, tpr) as threshold
    from scored
    where role = 'id_val'
    group by model, bank, dataset
),
flags as (
    select s.model, s.bank, s.dataset, t.id_val, s.example_id, s.distance > t.threshold as ood
    from scored s
    join thresholds t using (model, bank, dataset)
    where s.role = 'test'
)
select
    a.bank,
    a.id_val,
    a.dataset,
    a.model as model_i,
    b.model as model_j,
    a.example_id,
    a.ood as ood_i,
    b.ood as ood_j
from flags a
join flags b
    on a.bank = b.bank and a.dataset = b.dataset and a.example_id = b.example_id
    and a.model < b.model;
