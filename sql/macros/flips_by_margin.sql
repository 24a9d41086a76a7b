-- Flips against the first model's confidence, per dataset and ordered pair (model_i,
-- model_j), both ways: the examples both models answered with known correctness and whose
-- model_i stored an answer distribution of two or more answers, cut into ten deciles of
-- model_i's margin (its top probability minus the second), with each decile's margin range,
-- examples and flip rate ((c_to_w + w_to_c) / n). Dutta et al. find flips concentrate where
-- the reference's margin is small; read the rows whose model_i is the reference.
create or replace macro flips_by_margin() as table
with margins as (
    select dataset, model, example_id,
        list_reverse_sort(probs)[1] - list_reverse_sort(probs)[2] as margin
    from predictions
    where len(probs) >= 2
),
scored as (select * from answer_agreement_examples() where scored),
flips as (
    select dataset, model_i, model_j, example_id, c_to_w or w_to_c as flip from scored
    union all
    select dataset, model_j, model_i, example_id, c_to_w or w_to_c from scored
),
ranked as (
    select f.*, m.margin,
        ntile(10) over (partition by f.dataset, f.model_i, f.model_j order by m.margin, f.example_id) as decile
    from flips f
    join margins m on m.dataset = f.dataset and m.model = f.model_i and m.example_id = f.example_id
)
select dataset, model_i, model_j, decile, min(margin) as margin_lo, max(margin) as margin_hi,
    count(*) as n, avg(flip::int) as flip_rate
from ranked
group by all
order by dataset, model_i, model_j, decile;
