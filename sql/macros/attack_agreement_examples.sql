-- Per attack, dataset, model pair and example both models classified correctly before the
-- attack: whether each model was successfully attacked on it. attack_agreement() and the
-- bootstrap intervals aggregate these rows.
create or replace macro attack_agreement_examples() as table
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
    a.example_id,
    a.broken as broken_i,
    b.broken as broken_j
from attacked a
join attacked b
    on a.attack = b.attack and a.dataset = b.dataset and a.example_id = b.example_id
    and a.model < b.model;
