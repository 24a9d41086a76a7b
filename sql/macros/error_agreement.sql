-- Agreement of prediction errors, per dataset and model pair (model_i < model_j): error
-- counts over the n examples both models predicted, both/either counts, their Jaccard, the
-- Jaccard two independent models with these error rates would reach (expected_jaccard), and
-- Cohen's kappa of the two error indicators, and McNemar's chi-squared (continuity
-- corrected) on the examples only one of the two got wrong (only_i, only_j).
-- The counts come from one pass over the predictions: each example becomes two bit masks
-- (the models that predicted it, those that got it wrong), examples with equal masks are
-- counted together, and every pair reads its two bits of each distinct mask. This is
-- linear in the examples, where a join of every pair would grow with pairs x examples.
create or replace macro error_agreement() as table
with models as (  -- model number m: bit m of the masks (at most 128 models per dataset)
    select dataset, model, (row_number() over (partition by dataset order by model) - 1)::uhugeint as m
    from (select distinct dataset, model from predictions where correct is not null)
),
masks as (
    select
        p.dataset,
        bit_or(1::uhugeint << m.m) as seen,
        bit_or(if(p.correct, 0::uhugeint, 1::uhugeint << m.m)) as wrong
    from predictions p
    join models m on m.dataset = p.dataset and m.model = p.model
    where p.correct is not null
        and case when m.m >= 128 then error(
            'error_agreement: more than 128 models on dataset ' || p.dataset
            || '; compare fewer at once (ce query with a filter on model)') else true end
    group by p.dataset, p.example_id
),
kinds as (
    select dataset, seen, wrong, count(*) as examples from masks group by all
),
bits as (
    select
        a.dataset, a.model as model_i, b.model as model_j, k.examples,
        (k.wrong >> a.m) & 1 = 1 as wrong_i,
        (k.wrong >> b.m) & 1 = 1 as wrong_j
    from models a
    join models b on a.dataset = b.dataset and a.model < b.model
    join kinds k on k.dataset = a.dataset
    where (k.seen >> a.m) & 1 = 1 and (k.seen >> b.m) & 1 = 1
),
pairs as (
    select
        dataset,
        model_i,
        model_j,
        sum(examples) as n,
        coalesce(sum(examples) filter (where wrong_i), 0) as errors_i,
        coalesce(sum(examples) filter (where wrong_j), 0) as errors_j,
        coalesce(sum(examples) filter (where wrong_i and wrong_j), 0) as "both",
        coalesce(sum(examples) filter (where wrong_i or wrong_j), 0) as either,
        coalesce(sum(examples) filter (where wrong_i and not wrong_j), 0) as only_i,
        coalesce(sum(examples) filter (where wrong_j and not wrong_i), 0) as only_j
    from bits
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
