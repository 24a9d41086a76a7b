-- Per stage, bank, test dataset, model pair and test example: whether each model flags it
-- OOD (see ood_flags). The bootstrap intervals aggregate these rows.
create or replace macro ood_agreement_examples(k, tpr := 0.95) as table
with flags as (select * from ood_flags(k, tpr := tpr))
select
    a.stage,
    a.bank,
    a.id_val,
    a.dataset,
    a.model as model_i,
    b.model as model_j,
    a.example_id,
    a.ood as ood_i,
    b.ood as ood_j
from flags a
join flags b
    on a.stage = b.stage and a.bank = b.bank and a.dataset = b.dataset and a.example_id = b.example_id
    and a.model < b.model;
