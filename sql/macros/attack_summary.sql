-- Adversarial vulnerability per model, attack and dataset (the paper's Table 3): examples,
-- accuracy before the attack (not skipped) and under it (failed attacks), the absolute and
-- relative drop, the attack success rate over the examples attacked, each rate with its 95%
-- Wilson interval (_lo, _hi), mean model queries, and in successful attacks the mean number
-- of words perturbed and their mean share of the text's words.
create or replace macro attack_summary() as table
with counts as (
    select
        model,
        attack,
        dataset,
        count(*) as n,
        count(*) filter (where result <> 'skipped') as attacked,
        count(*) filter (where result = 'failed') as held,
        count(*) filter (where result = 'succeeded') as broken,
        avg(queries) filter (where result <> 'skipped') as mean_queries,
        avg(words_perturbed) filter (where result = 'succeeded') as mean_words_perturbed,
        avg(words_perturbed / words) filter (where result = 'succeeded') as mean_share_perturbed
    from attacks
    group by model, attack, dataset
)
select
    model,
    attack,
    dataset,
    n,
    attacked / n as accuracy_before,
    held / n as accuracy_under_attack,
    (wilson_interval(held, n)).lo as accuracy_under_attack_lo,
    (wilson_interval(held, n)).hi as accuracy_under_attack_hi,
    accuracy_before - accuracy_under_attack as drop_abs,
    case when accuracy_before > 0 then (accuracy_before - accuracy_under_attack)
        / accuracy_before end as drop_rel,
    broken / nullif(attacked, 0) as success_rate,
    (wilson_interval(broken, attacked)).lo as success_rate_lo,
    (wilson_interval(broken, attacked)).hi as success_rate_hi,
    mean_queries,
    mean_words_perturbed,
    mean_share_perturbed
from counts;
