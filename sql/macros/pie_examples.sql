-- Pruning-identified exemplars (Hooker et al. 2019), per dataset and pair of replica groups
-- of two or more (reference_group against every other group): the examples where the modal
-- answer of the other group's replicas differs from the reference group's. An answer
-- is a model's label or choice, else its answer text; a group's modal answers are those
-- most of its replicas gave (several on a tie), and an example is a PIE when no modal
-- answer is shared. Beside each: the modal answers, how many replicas gave them (votes) of
-- how many answered, the gold label or answers, and the text.
create or replace macro pie_examples(reference_group) as table
with answers as (
    select p.dataset, p.example_id, r.replica_group as grp, coalesce(p.pred_label::varchar, p.prediction) as answer
    from predictions p
    join replicas r on r.model = p.model and r.replicas >= 2
    where coalesce(p.pred_label::varchar, p.prediction) is not null
),
votes as (
    select dataset, example_id, grp, answer, count(*) as votes,
        sum(count(*)) over (partition by dataset, example_id, grp) as answered,
        max(count(*)) over (partition by dataset, example_id, grp) as top
    from answers
    group by dataset, example_id, grp, answer
),
modal as (
    select dataset, example_id, grp, list(answer order by answer) as modal, any_value(votes) as votes,
        any_value(answered)::bigint as answered
    from votes
    where votes = top
    group by dataset, example_id, grp
)
select
    r.dataset,
    r.grp as reference_group,
    o.grp as other_group,
    r.example_id,
    array_to_string(r.modal, ' | ') as reference_answer,
    r.votes as reference_votes,
    r.answered as reference_answered,
    array_to_string(o.modal, ' | ') as other_answer,
    o.votes as other_votes,
    o.answered as other_answered,
    coalesce(x.label::varchar, array_to_string(x.answers, ' | ')) as gold,
    coalesce(x.text, x.question) as text
from modal r
join modal o on o.dataset = r.dataset and o.example_id = r.example_id and o.grp <> r.grp
left join examples x on x.dataset = r.dataset and x.example_id = r.example_id
where r.grp = reference_group and len(list_intersect(r.modal, o.modal)) = 0
order by r.dataset, o.grp, x.idx nulls last, r.example_id;
