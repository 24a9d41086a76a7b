-- The order models are shown in, as a rank (1 first): the reference first (the model named
-- `reference`, else the store's reference (view reference), else the one with the most
-- parameters), then by parameters and size on disk,
-- largest first, then by name. Every pair of Table 2, the sweep and the slices puts its
-- better-ranked model first (model_i).
create or replace macro model_rank(reference := null) as table
select
    model,
    row_number() over (
        order by (model = coalesce(reference, (select any_value(model) from reference))) desc nulls last,
        parameters desc nulls last,
        bytes desc nulls last, model
    ) as rank
from models;
