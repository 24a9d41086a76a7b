-- Replica groups: one row per model that is a replica of a group (the same recipe, another
-- seed): its group, its seed where known, and how many models the group holds. A model
-- joins a group through its latest run that names one (ce finetune --seeds, ce compress,
-- ce extract/ood/attack of a group, ce ingest --replica-of); a model that others were made
-- replicas of with ce ingest --replica-of MODEL is a member of its group too, with no seed
-- (not a model that merely shares a group's name: the pretrained `large` of the demo).
create or replace view replicas as
with declared as (
    select
        model,
        arg_max(json_extract_string(provenance, '$.replica.group'), started || run_id) as replica_group,
        arg_max(try_cast(json_extract_string(provenance, '$.replica.seed') as bigint), started || run_id) as seed
    from runs
    where status = 'complete' and model is not null
        and json_extract_string(provenance, '$.replica.group') is not null
    group by model
),
founders as (  -- named by --replica-of (runs 'replica'), not by a group's own runs
    select distinct d.replica_group as model, d.replica_group, null::bigint as seed
    from declared d
    join models m on m.model = d.replica_group
    where d.replica_group not in (select model from declared)
        and d.replica_group in (  -- made a replica of this very model, which had no group then
            select json_extract_string(params, '$.of') from runs
            where command = 'replica' and status = 'complete'
                and json_extract_string(params, '$.of') = json_extract_string(provenance, '$.replica.group')
        )
),
members as (
    select * from declared union all select * from founders
)
select model, replica_group, seed, count(*) over (partition by replica_group) as replicas
from members;
