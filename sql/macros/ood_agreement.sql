-- Agreement of data distribution (Deep-kNN OOD detection), per bank, test dataset and model
-- pair: each model's threshold is the tpr-quantile of its id_val distances to the k-th bank
-- neighbour (so a share tpr of in-distribution points is kept); a test example is OOD when
-- its distance is above it. Set sizes, OOD rates and the Jaccard of the two OOD sets.
create or replace macro ood_agreement(k, tpr := 0.95) as table
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
),
pairs as (
    select
        a.bank,
        a.id_val,
        a.dataset,
        a.model as model_i,
        b.model as model_j,
        count(*) as n,
        count(*) filter (where a.ood) as ood_i,
        count(*) filter (where b.ood) as ood_j,
        count(*) filter (where a.ood and b.ood) as "both",
        count(*) filter (where a.ood or b.ood) as either
    from flags a
    join flags b
        on a.bank = b.bank and a.dataset = b.dataset and a.example_id = b.example_id
        and a.model < b.model
    group by a.bank, a.id_val, a.dataset, a.model, b.model
)
select
    bank, id_val, dataset, model_i, model_j, k as k, tpr as tpr, n, ood_i, ood_j,
    ood_i / n as ood_rate_i,
    ood_j / n as ood_rate_j,
    "both",
    either,
    case when either > 0 then "both" / either end as jaccard
from pairs;
