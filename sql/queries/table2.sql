-- The paper's Table 2 for every model pair in the store: agreement of prediction errors
-- (Jaccard, with the chance baseline and Cohen's kappa beside it), per dataset.
select
    dataset,
    model_i,
    model_j,
    n,
    jaccard as errors,
    expected_jaccard as errors_chance,
    kappa as errors_kappa
from error_agreement()
order by dataset, model_i, model_j;
