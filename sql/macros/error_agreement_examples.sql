-- Per dataset, model pair (model_i < model_j) and example both models predicted: whether
-- each got it wrong. error_agreement() and the bootstrap intervals aggregate these rows.
create or replace macro error_agreement_examples() as table
with wrong as (
    select dataset, model, example_id, not correct as wrong
    from predictions
    where correct is not null
)
select
    a.dataset,
    a.model as model_i,
    b.model as model_j,
    a.example_id,
    a.wrong as wrong_i,
    b.wrong as wrong_j
from wrong a
join wrong b on a.dataset = b.dataset and a.example_id = b.example_id and a.model < b.model;
