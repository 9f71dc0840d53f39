-- @title Recommendation quality
-- @description The latest evaluation of the recommender beside the most-popular and random baselines.
-- @definition Written by "npm run ml -- evaluate" (and train). Time-based split: every customer with at least 5
-- @definition distinct titles has their last 2 (by first viewing) held out; the model learns only from the rest.
-- @definition Hit-rate@10 = share of those customers with a held-out title among their 10 recommendations;
-- @definition NDCG@10 = the same ranked by position (1/log2(position + 1), over the best possible); coverage = share
-- @definition of the catalog recommended to at least one of them. Baselines: the 10 most-watched titles the customer
-- @definition has not watched, and 10 random unwatched titles. Empty until the first evaluation.
-- @roles admin analyst
-- @maxage 60
SELECT r.method,
       CASE r.method WHEN 'recommender' THEN 'Recommender' WHEN 'most_popular' THEN 'Most popular' ELSE 'Random' END AS method_name,
       r.hit_rate_at_10, r.ndcg_at_10, r.coverage,
       e.users, e.held_out, e.catalog, e.seed, e.evaluated_at
FROM rec_evaluations e JOIN rec_evaluation_results r ON r.evaluation_id = e.id
WHERE e.id = (SELECT max(id) FROM rec_evaluations)
ORDER BY CASE r.method WHEN 'recommender' THEN 1 WHEN 'most_popular' THEN 2 ELSE 3 END
