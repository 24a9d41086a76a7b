-- Agreement of prediction errors, per dataset and model pair (model_i < model_j): error
-- counts over the n examples both models predicted, both/either counts, their Jaccard, the
-- Jaccard two independent models with these error rates would reach (expected_jaccard), and
-- Cohen's kappa of the two error indicators.
create or replace macro error_agreement() as table
with wrong as (
    select dataset, model, example_id, not correct as wrong
    from predictions
    where correct is not null
),
pairs as (
    select
        a.dataset,
        a.model as model_i,
        b.model as model_j,
        count(*) as n,
        count(*) filter (where a.wrong) as errors_i,
        count(*) filter (where b.wrong) as errors_j,
        count(*) filter (where a.wrong and b.wrong) as "both",
        count(*) filter (where a.wrong or b.wrong) as either
    from wrong a
    join wrong b on a.dataset = b.dataset and a.example_id = b.example_id and a.model < b.model
    group by a.dataset, a.model, b.model
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
    end as kappa
from rates;
