-- Per dataset with gold answers and model (the reference first, see model_rank): examples
-- predicted, share correct with its 95% Wilson interval, and mean exact match and F1
-- (extractive QA; null for classification). Unlabelled sets (OOD test texts) are left out.
select
    p.dataset,
    p.model,
    count(*) as n,
    avg(p.correct::int) as accuracy,
    (wilson_interval(sum(p.correct::int), count(p.correct))).lo as accuracy_lo,
    (wilson_interval(sum(p.correct::int), count(p.correct))).hi as accuracy_hi,
    avg(p.exact) as exact_match,
    avg(p.f1) as f1
from predictions p
left join model_rank() r on r.model = p.model
group by p.dataset, p.model, r.rank
having count(p.correct) > 0
order by p.dataset, r.rank nulls last, p.model;
