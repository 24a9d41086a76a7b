-- The paper's Table 3: accuracy of each model before and under each attack, with the
-- absolute and relative drop and the attack success rate (95% Wilson intervals in _lo, _hi),
-- the reference model first (see model_rank).
select
    s.dataset,
    s.attack,
    s.model,
    s.n,
    s.accuracy_before,
    s.accuracy_under_attack,
    s.accuracy_under_attack_lo,
    s.accuracy_under_attack_hi,
    s.drop_abs,
    s.drop_rel,
    s.success_rate,
    s.success_rate_lo,
    s.success_rate_hi,
    s.mean_queries,
    s.mean_words_perturbed,
    s.mean_share_perturbed
from attack_summary() s
left join model_rank() r on r.model = s.model
order by s.dataset, s.attack, r.rank nulls last, s.model;
