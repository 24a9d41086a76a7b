-- Changed answers per dataset, model pair (model_i < model_j) and example both models
-- answered (Dutta et al., NeurIPS 2024): each model's answer (its label or choice, else its
-- answer text) and correctness; c_to_w (i correct, j wrong) and w_to_c (the reverse), null
-- where either correctness is unknown (scored is false); changed (the answers differ, a
-- wrong answer changed to another wrong one included). Where both stored an answer
-- distribution of the same length: KL(i || j), KL(j || i) and the Jensen-Shannon divergence
-- (natural log; probabilities below 1e-12 count as 1e-12 in the log), whether the two
-- distributions' top answers agree, and each model's Brier score against the gold label
-- (sum over classes of the squared error to the one-hot gold) and confidence (its largest
-- probability, for the pair's calibration). prompt_differs: both logs
-- hashed the prompt and the hashes differ (the models did not see the same input).
create or replace macro answer_agreement_examples() as table
with answers as (
    select
        p.dataset, p.model, p.example_id, p.correct, p.prompt_hash,
        coalesce(p.pred_label::varchar, p.prediction) as answer,
        p.probs,
        case when x.label between 0 and len(p.probs) - 1 then
            list_sum(list_transform(p.probs, lambda q, c: (q - if(c - 1 = x.label, 1.0, 0.0)) ** 2))
        end as brier
    from predictions p
    left join examples x on x.dataset = p.dataset and x.example_id = p.example_id
    where coalesce(p.pred_label::varchar, p.prediction) is not null
),
pairs as (
    select
        a.dataset, a.model as model_i, b.model as model_j, a.example_id,
        a.answer as answer_i, b.answer as answer_j, a.correct as correct_i, b.correct as correct_j,
        a.correct is not null and b.correct is not null as scored,
        case when a.correct is not null and b.correct is not null then a.correct and not b.correct end as c_to_w,
        case when a.correct is not null and b.correct is not null then b.correct and not a.correct end as w_to_c,
        a.answer <> b.answer as changed,
        len(a.probs) = len(b.probs) and len(a.probs) > 0 as compared,
        a.probs as p, b.probs as q,
        a.brier as brier_i, b.brier as brier_j,
        coalesce(a.prompt_hash <> b.prompt_hash, false) as prompt_differs
    from answers a
    join answers b on a.dataset = b.dataset and a.example_id = b.example_id and a.model < b.model
)
select
    dataset, model_i, model_j, example_id, answer_i, answer_j, correct_i, correct_j, scored,
    c_to_w, w_to_c, changed, compared, prompt_differs,
    case when compared then list_sum(list_transform(list_zip(p, q), lambda z:
        z[1] * ln(greatest(z[1], 1e-12) / greatest(z[2], 1e-12)))) end as kl_ij,
    case when compared then list_sum(list_transform(list_zip(p, q), lambda z:
        z[2] * ln(greatest(z[2], 1e-12) / greatest(z[1], 1e-12)))) end as kl_ji,
    case when compared then list_sum(list_transform(list_zip(p, q), lambda z:
        0.5 * z[1] * ln(greatest(z[1], 1e-12) / greatest((z[1] + z[2]) / 2, 1e-12))
        + 0.5 * z[2] * ln(greatest(z[2], 1e-12) / greatest((z[1] + z[2]) / 2, 1e-12)))) end as js,
    case when compared then list_position(p, list_max(p)) = list_position(q, list_max(q)) end as top1,
    case when compared then brier_i end as brier_i,
    case when compared then brier_j end as brier_j,
    case when compared then list_max(p) end as confidence_i,
    case when compared then list_max(q) end as confidence_j
from pairs;
