-- One row per model the store holds rows or runs of: the kinds of rows it has, where it came from (source: the --model given,
-- a folder or Hub id), its architecture, parameters (non-zero weights where counted, else
-- the count published for an alias), size on disk, and its recipe (how a ce-made model was
-- derived, and its parent).
create or replace view models as
with facts as (
    select
        model,
        command,
        started,
        coalesce(
            json_extract_string(params, '$.model_arg'),
            json_extract_string(provenance, '$.model_source')
        ) as source,
        json_extract_string(provenance, '$.architecture') as architecture,
        coalesce(
            try_cast(json_extract_string(provenance, '$.model_nonzero_parameters') as bigint),
            try_cast(json_extract_string(provenance, '$.model_parameters') as bigint),
            try_cast(json_extract_string(provenance, '$.published_parameters') as bigint)
        ) as parameters,
        try_cast(json_extract_string(provenance, '$.model_bytes') as bigint) as bytes,
        coalesce(
            json_extract_string(provenance, '$.derived_from.method'),
            json_extract_string(params, '$.method'),
            case when command = 'finetune' then 'finetune' when command = 'ingest-errors' then 'ingested error list'
                when command like 'ingest-%' then 'ingested ' || substr(command, 8) || ' results' end
        ) as method,
        coalesce(
            json_extract_string(provenance, '$.derived_from.parent'),
            json_extract_string(provenance, '$.parent')
        ) as parent
    from runs
    where status = 'complete' and model is not null and command not in ('reference', 'replica')
)
select
    model,
    (select list(kind order by kind) from model_parts k where k.model = m.model) as kinds,
    arg_max(source, started) as source,
    arg_max(architecture, started) as architecture,
    max(parameters) as parameters,
    max(bytes) as bytes,
    arg_max(method, started) as method,
    arg_max(parent, started) as parent,
    list(distinct command order by command) filter (where command is not null) as commands
from (select model from model_parts union select model from facts) m
left join facts using (model)
group by model;
