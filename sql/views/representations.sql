-- How each model represented each dataset's inputs at each stage, as its latest extraction
-- recorded: the model's family (encoder, seq2seq, decoder), the pooling (cls: first token,
-- last: last non-padding token, mean: over non-padding tokens) and the hidden state (layer:
-- 0 = the embedding output, blocks = the last block). Runs made before ce recorded it took the
-- first token of the last hidden state whatever the family: pooling cls, layer and blocks null.
create or replace view representations as
select model, stage, dataset, family, pooling, layer, blocks
from (
    select
        model,
        json_extract_string(provenance, '$.stage') as stage,
        dataset,
        json_extract_string(provenance, '$.family') as family,
        coalesce(json_extract_string(provenance, '$.representation.pooling'), 'cls') as pooling,
        try_cast(json_extract_string(provenance, '$.representation.layer') as integer) as layer,
        try_cast(json_extract_string(provenance, '$.representation.blocks') as integer) as blocks,
        started,
        run_id
    from runs
    where command = 'extract' and status = 'complete'
)
qualify row_number() over (partition by model, stage, dataset order by started desc, run_id desc) = 1;
