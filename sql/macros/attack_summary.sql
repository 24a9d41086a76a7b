-- Adversarial vulnerability per model, attack and dataset (the paper's Table 3): examples,
-- accuracy before the attack (not skipped) and under it (failed attacks), the absolute and
-- relative drop, the attack success rate over the examples attacked, mean model queries,
-- and the mean share of words perturbed in successful attacks.
create or replace macro attack_summary() as table
select
    model,
    attack,
    dataset,
    count(*) as n,
    count(*) filter (where result <> 'skipped') / count(*) as accuracy_before,
    count(*) filter (where result = 'failed') / count(*) as accuracy_under_attack,
    accuracy_before - accuracy_under_attack as drop_abs,
    case when accuracy_before > 0 then (accuracy_before - accuracy_under_attack)
        / accuracy_before end as drop_rel,
    count(*) filter (where result = 'succeeded')
        / nullif(count(*) filter (where result <> 'skipped'), 0) as success_rate,
    avg(queries) filter (where result <> 'skipped') as mean_queries,
    avg(words_perturbed / words) filter (where result = 'succeeded') as mean_words_perturbed
from attacks
group by model, attack, dataset;
