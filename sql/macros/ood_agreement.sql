-- Agreement of data distribution (Deep-kNN OOD detection), per stage (the embeddings the
-- features come from), bank, test dataset and model pair: each model's threshold is the
-- tpr-quantile of its id_val distances to the k-th bank neighbour (so a share tpr of
-- in-distribution points is kept); a test example is OOD when its distance is above it
-- (ood_flags). Set sizes, OOD rates and the Jaccard of the two OOD sets over the n test
-- examples both models scored. Like error_agreement, the counts come from per-example bit
-- masks (models that scored it, models that flag it), linear in the examples. The Jaccard
-- two independent detectors with these OOD rates would reach: expected_jaccard.
create or replace macro ood_agreement(k, tpr := 0.95) as table
with flags as (select * from ood_flags(k, tpr := tpr)),
models as (  -- model number m: bit m of the masks (at most 128 models per stage, bank, test set)
    select stage, bank, dataset, model, any_value(id_val) as id_val,
        (row_number() over (partition by stage, bank, dataset order by model) - 1)::uhugeint as m
    from flags
    group by stage, bank, dataset, model
),
masks as (
    select
        f.stage,
        f.bank,
        f.dataset,
        bit_or(1::uhugeint << m.m) as seen,
        bit_or(if(f.ood, 1::uhugeint << m.m, 0::uhugeint)) as flagged
    from flags f
    join models m on m.stage = f.stage and m.bank = f.bank and m.dataset = f.dataset and m.model = f.model
    where case when m.m >= 128 then error(
            'ood_agreement: more than 128 models on ' || f.dataset
            || '; compare fewer at once (ce query with a filter on model)') else true end
    group by f.stage, f.bank, f.dataset, f.example_id
),
kinds as (
    select stage, bank, dataset, seen, flagged, count(*) as examples from masks group by all
),
bits as (
    select
        a.stage, a.bank, a.id_val, a.dataset, a.model as model_i, b.model as model_j, k.examples,
        (k.flagged >> a.m) & 1 = 1 as ood_i,
        (k.flagged >> b.m) & 1 = 1 as ood_j
    from models a
    join models b on a.stage = b.stage and a.bank = b.bank and a.dataset = b.dataset and a.model < b.model
    join kinds k on k.stage = a.stage and k.bank = a.bank and k.dataset = a.dataset
    where (k.seen >> a.m) & 1 = 1 and (k.seen >> b.m) & 1 = 1
),
pairs as (
    select
        stage,
        bank,
        id_val,
        dataset,
        model_i,
        model_j,
        sum(examples) as n,
        coalesce(sum(examples) filter (where ood_i), 0) as ood_i,
        coalesce(sum(examples) filter (where ood_j), 0) as ood_j,
        coalesce(sum(examples) filter (where ood_i and ood_j), 0) as "both",
        coalesce(sum(examples) filter (where ood_i or ood_j), 0) as either
    from bits
    group by stage, bank, id_val, dataset, model_i, model_j
)
select
    stage, bank, id_val, dataset, model_i, model_j, k as k, tpr as tpr, n, ood_i, ood_j,
    ood_i / n as ood_rate_i,
    ood_j / n as ood_rate_j,
    "both",
    either,
    case when either > 0 then "both" / either end as jaccard,
    case when ood_i + ood_j > 0 then
        (ood_i / n) * (ood_j / n) / (ood_i / n + ood_j / n - (ood_i / n) * (ood_j / n))
    end as expected_jaccard
from pairs;
