-- Agreement of data distribution (Deep-kNN OOD detection), per bank, test dataset and model
-- pair: each model's threshold is the tpr-quantile of its id_val distances to the k-th bank
-- neighbour (so a share tpr of in-distribution points is kept); a test example is OOD when
-- its distance is above it. Set sizes, OOD rates and the Jaccard of the two OOD sets.
create or replace macro ood_agreement(k, tpr := 0.95) as table
with pairs as (
    select
        bank,
        id_val,
        dataset,
        model_i,
        model_j,
        count(*) as n,
        count(*) filter (where ood_i) as ood_i,
        count(*) filter (where ood_j) as ood_j,
        count(*) filter (where ood_i and ood_j) as "both",
        count(*) filter (where ood_i or ood_j) as either
    from ood_agreement_examples(k, tpr := tpr)
    group by bank, id_val, dataset, model_i, model_j
)
select
    bank, id_val, dataset, model_i, model_j, k as k, tpr as tpr, n, ood_i, ood_j,
    ood_i / n as ood_rate_i,
    ood_j / n as ood_rate_j,
    "both",
    either,
    case when either > 0 then "both" / either end as jaccard
from pairs;
