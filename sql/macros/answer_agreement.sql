-- Changed answers per dataset and model pair (model_i < model_j), from
-- answer_agreement_examples(): n examples both answered; over the `scored` ones (both
-- correctness known) c_to_w and w_to_c counts, flips = (c_to_w + w_to_c) / scored,
-- flips_ij = c_to_w / scored (i correct, j wrong: a negative flip when i is the reference)
-- and flips_ji = w_to_c / scored; changes = share of the n whose answers differ, agreement
-- = 1 - changes; over the `compared` ones (both stored answer distributions of one length)
-- the mean KL(i || j), KL(j || i), Jensen-Shannon divergence, top-1 agreement and each
-- model's mean Brier score (brier_i, brier_j over the same examples, where the gold label
-- is known), and each model's ECE and MCE (15 equal-width confidence bins) over the same
-- examples, those compared and scored;
-- prompts_differ: documents whose prompt hashes differ. Empty (null) where
-- nothing could be compared, never zero. McNemar's exact test of c_to_w against w_to_c is
-- computed from the two counts (ce compare shows its p-value).
create or replace macro answer_agreement() as table
with examples as (select * from answer_agreement_examples()),
sides as (
    select dataset, model_i, model_j, 'i' as side, confidence_i as confidence, correct_i as correct
    from examples where compared and scored
    union all
    select dataset, model_i, model_j, 'j', confidence_j, correct_j
    from examples where compared and scored
),
bins as (
    select dataset, model_i, model_j, side, least(floor(confidence * 15), 14) as bin, count(*) as n,
        avg(correct::int) as accuracy, avg(confidence) as confidence
    from sides
    group by all
),
calibrated as (
    select dataset, model_i, model_j, side, sum(n * abs(accuracy - confidence)) / sum(n) as ece,
        max(abs(accuracy - confidence)) as mce
    from bins
    group by all
),
pairs as (
select
    dataset, model_i, model_j,
    count(*) as n,
    count(*) filter (where scored) as scored,
    count(*) filter (where c_to_w) as c_to_w,
    count(*) filter (where w_to_c) as w_to_c,
    (count(*) filter (where c_to_w or w_to_c)) / nullif(count(*) filter (where scored), 0) as flips,
    (count(*) filter (where c_to_w)) / nullif(count(*) filter (where scored), 0) as flips_ij,
    (count(*) filter (where w_to_c)) / nullif(count(*) filter (where scored), 0) as flips_ji,
    avg(changed::int) as changes,
    1 - avg(changed::int) as agreement,
    count(*) filter (where compared) as compared,
    avg(kl_ij) as kl_ij,
    avg(kl_ji) as kl_ji,
    avg(js) as js,
    avg(top1::int) as top1,
    count(brier_i) filter (where brier_j is not null) as brier_n,
    avg(brier_i) filter (where brier_j is not null) as brier_i,
    avg(brier_j) filter (where brier_i is not null) as brier_j,
    count(*) filter (where prompt_differs) as prompts_differ
from examples
group by dataset, model_i, model_j
)
select p.*, ci.ece as ece_i, cj.ece as ece_j, ci.mce as mce_i, cj.mce as mce_j
from pairs p
left join calibrated ci
    on ci.dataset = p.dataset and ci.model_i = p.model_i and ci.model_j = p.model_j and ci.side = 'i'
left join calibrated cj
    on cj.dataset = p.dataset and cj.model_i = p.model_i and cj.model_j = p.model_j and cj.side = 'j';
