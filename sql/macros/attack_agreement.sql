-- Agreement of adversarial vulnerability per attack, dataset and model pair: over the
-- examples both models classified correctly before the attack, the sets of examples each
-- model was successfully attacked on, their sizes and their Jaccard.
create or replace macro attack_agreement() as table
with attacked as (
    select model, attack, dataset, example_id, result = 'succeeded' as broken
    from attacks
    where result <> 'skipped'
)
select
    a.attack,
    a.dataset,
    a.model as model_i,
    b.model as model_j,
    count(*) as n,
    count(*) filter (where a.broken) as broken_i,
    count(*) filter (where b.broken) as broken_j,
    count(*) filter (where a.broken and b.broken) as "both",
    count(*) filter (where a.broken or b.broken) as either,
    case when either > 0 then "both" / either end as jaccard
from attacked a
join attacked b
    on a.attack = b.attack and a.dataset = b.dataset and a.example_id = b.example_id
    and a.model < b.model
group by a.attack, a.dataset, a.model, b.model;
