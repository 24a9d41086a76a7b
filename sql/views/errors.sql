-- The examples each model got wrong: one row per (model, dataset, example_id) whose
-- prediction is not correct.
create or replace view errors as
select model, dataset, example_id
from predictions
where not correct;
