-- Agreement of adversarial vulnerability per attack, dataset and model pair: over the
-- examples both models classified correctly before the attack, the sets of examples each
-- model was successfully attacked on, their sizes and their Jaccard.
create or replace macro attack_agreement() as table
select
    attack,
    dataset,
    model_i,
    model_j,
    count(*) as n,
    count(*) filter (where broken_i) as broken_i,
    count(*) filter (where broken_j) as broken_j,
    count(*) filter (where broken_i and broken_j) as "both",
    count(*) filter (where broken_i or broken_j) as either,
    case when either > 0 then "both" / either end as jaccard
from attack_agreement_examples()
group by attack, dataset, model_i, model_j;
