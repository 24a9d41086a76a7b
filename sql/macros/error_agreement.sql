-- Agreement of prediction errors, per dataset and model pair (model_i < model_j): error
-- counts over the n examples both models predicted, both/either counts, their Jaccard, the
-- Jaccard two independent models with these error rates would reach (expected_jaccard), and
-- Cohen's kappa of the two error indicators, and McNemar's chi-squared (continuity
-- corrected) on the examples only one of the two got wrong (only_i, only_j).
create or replace macro error_agreement() as table
with pairs as (
    select
        dataset,
        model_i,
        model_j,
        count(*) as n,
        count(*) filter (where wrong_i) as errors_i,
        count(*) filter (where wrong_j) as errors_j,
        count(*) filter (where wrong_i and wrong_j) as "both",
        count(*) filter (where wrong_i or wrong_j) as either,
        count(*) filter (where wrong_i and not wrong_j) as only_i,
        count(*) filter (where wrong_j and not wrong_i) as only_j
    from error_agreement_examples()
    group by dataset, model_i, model_j
),
rates as (
    select *, errors_i / n as p_i, errors_j / n as p_j from pairs
)
select
    dataset, model_i, model_j, n, errors_i, errors_j, "both", either,
    case when either > 0 then "both" / either end as jaccard,
    case when p_i + p_j > 0 then p_i * p_j / (p_i + p_j - p_i * p_j) end as expected_jaccard,
    case when p_i * p_j + (1 - p_i) * (1 - p_j) < 1 then
        ((n - either + "both") / n - (p_i * p_j + (1 - p_i) * (1 - p_j)))
        / (1 - (p_i * p_j + (1 - p_i) * (1 - p_j)))
    end as kappa,
    only_i,
    only_j,
    case when only_i + only_j > 0 then
        (abs(only_i - only_j) - 1) ** 2 / (only_i + only_j)
    end as mcnemar_chi2
from rates;
