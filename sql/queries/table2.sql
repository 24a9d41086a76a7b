-- The paper's Table 2 for every model pair in the store, per dataset: agreement of
-- prediction errors (Jaccard, chance baseline, Cohen's kappa), of representations before
-- (pretrained) and after (finetuned) fine-tuning at k neighbours (mean, variance), and of
-- OOD sets at k and tpr for the test sets whose in-distribution data is this dataset: one
-- row per test set (ood_dataset), bank (ood_bank) and stage of the features (ood_stage).
-- errors_mcnemar_chi2 tests whether the two models' error rates differ (paired examples).
with
errors as (select * from error_agreement()),
knn as (select * from knn_agreement($k)),
ood as (select * from ood_agreement($k, $tpr)),
pairs as (
    select dataset, model_i, model_j from errors
    union select dataset, model_i, model_j from knn
    union select id_val, model_i, model_j from ood
)
select
    p.dataset,
    p.model_i,
    p.model_j,
    e.jaccard as errors,
    e.expected_jaccard as errors_chance,
    e.kappa as errors_kappa,
    e.mcnemar_chi2 as errors_mcnemar_chi2,
    b.mean_jaccard as repr_before,
    b.var_jaccard as repr_before_var,
    a.mean_jaccard as repr_after,
    a.var_jaccard as repr_after_var,
    o.dataset as ood_dataset,
    o.bank as ood_bank,
    o.stage as ood_stage,
    o.jaccard as distribution
from pairs p
left join errors e using (dataset, model_i, model_j)
left join knn b on b.stage = 'pretrained' and b.dataset = p.dataset
    and b.model_i = p.model_i and b.model_j = p.model_j
left join knn a on a.stage = 'finetuned' and a.dataset = p.dataset
    and a.model_i = p.model_i and a.model_j = p.model_j
left join ood o on o.id_val = p.dataset and o.model_i = p.model_i and o.model_j = p.model_j
order by p.dataset, p.model_i, p.model_j, o.dataset, o.bank, o.stage;
