-- Per model and dataset: examples predicted, share correct, and mean exact match and F1
-- (extractive QA; null for classification).
select
    model,
    dataset,
    count(*) as n,
    avg(correct::int) as accuracy,
    avg(exact) as exact_match,
    avg(f1) as f1
from predictions
group by model, dataset
order by dataset, model;
