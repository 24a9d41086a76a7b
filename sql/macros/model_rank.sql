-- The order models are shown in, as a rank (1 first): the reference first (the model named
-- `reference`, else the store's reference (view reference), else the one with the most
-- parameters), then by parameters and size on disk,
-- largest first, then by name; the replicas of a group (view replicas) together, by seed,
-- ranked by the group's largest counts. Every pair of Table 2, the sweep and the slices puts its
-- better-ranked model first (model_i).
create or replace macro model_rank(reference := null) as table
with ranked as (  -- the replicas of a group rank together, by seed, with the group's largest counts
    select
        m.model, r.seed,
        coalesce(r.replica_group, m.model) as unit,
        max(m.parameters) over unit as parameters,
        max(m.bytes) over unit as bytes
    from models m
    left join replicas r on r.model = m.model
    window unit as (partition by r.replica_group, if(r.replica_group is null, m.model, null))
)
select
    model,
    row_number() over (
        order by (model = coalesce(reference, (select any_value(model) from reference))) desc nulls last,
        parameters desc nulls last,
        bytes desc nulls last, unit, seed is not null, seed, model
    ) as rank
from ranked;
