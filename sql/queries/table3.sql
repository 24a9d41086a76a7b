-- The paper's Table 3: accuracy of each model before and under each attack, with the
-- absolute and relative drop and the attack success rate.
select
    dataset,
    attack,
    model,
    n,
    accuracy_before,
    accuracy_under_attack,
    drop_abs,
    drop_rel,
    success_rate,
    mean_queries,
    mean_words_perturbed
from attack_summary()
order by dataset, attack, accuracy_before desc, model;
