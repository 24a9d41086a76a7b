-- The model the store names as its reference (ce reference MODEL): the one named by the
-- latest reference run, none if that run cleared it. Pairs put it first (model_rank).
create or replace view reference as
select model
from (
    select model from runs
    where command = 'reference' and status = 'complete'
    order by started desc, run_id desc
    limit 1
)
where model is not null;
