-- mrr_metrics_monthly() (the one definition of the MRR metrics: 0013_metrics.sql, 0024_mart_shapes.sql,
-- 0026_mrr_country_totals.sql) sums the movements in two steps: per month, kind and churn reason (four sums per
-- mart row), then the two dozen filtered sums of the pivot over those few hundred rows. Before, every mart row went
-- through all two dozen filtered numeric sums: at 1M customers that was most of a cache miss of every MRR report
-- (README "Metrics: reports and marts"). The figures are the same to the cent.
SET LOCAL check_function_bodies = off;

CREATE OR REPLACE FUNCTION mrr_metrics_monthly(p_from date, p_to date, p_plans text[], p_countries text[],
                                    p_include_partial boolean DEFAULT false)
RETURNS TABLE (
  month date, partial boolean, period_note text, history_start timestamptz, first_full_month date,
  start_cents numeric, opening_cents numeric, new_cents numeric, expansion_cents numeric,
  reactivation_cents numeric, contraction_cents numeric, churn_cents numeric,
  voluntary_churn_cents numeric, involuntary_churn_cents numeric,
  transfer_in_cents numeric, transfer_out_cents numeric, end_cents numeric,
  customers_start bigint, opening_customers bigint, new_customers bigint, reactivated_customers bigint,
  expansion_customers bigint, contraction_customers bigint, churned_customers bigint,
  voluntary_churned bigint, involuntary_churned bigint, transfer_in_customers bigint, transfer_out_customers bigint,
  customers_end bigint,
  balance_end_cents numeric, balance_customers_end bigint, reconciliation_gap_cents numeric,
  customer_churn_rate numeric, voluntary_churn_rate numeric, involuntary_churn_rate numeric,
  net_customer_churn_rate numeric, gross_mrr_churn_rate numeric, net_mrr_churn_rate numeric,
  arpa_cents numeric, ltv_cents numeric, quick_ratio numeric, nrr numeric
)
LANGUAGE sql STABLE AS $fn$
WITH b AS (
  SELECT min(m.history_start) AS history_start,
         (date_trunc('month', min(m.history_start), 'UTC') AT TIME ZONE 'UTC')::date AS first_month,
         (date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC')::date AS current_month
  FROM mart_mrr_movements m
  WHERE m.country = '*'
),
seen AS (
  SELECT m.month, m.movement, m.churn_reason, m.events, m.before_cents, m.after_cents,
         m.from_plan <> 'none' AND (p_plans IS NULL OR m.from_plan = ANY(p_plans)) AS in_from,
         m.to_plan <> 'none' AND (p_plans IS NULL OR m.to_plan = ANY(p_plans)) AS in_to
  FROM mart_mrr_movements m
  -- no country filter: the rows summed over every country ('*'), else the countries asked for
  WHERE m.country = ANY(coalesce(p_countries, ARRAY['*']))
),
cls AS (
  SELECT s.month, s.churn_reason, s.events,
         CASE WHEN s.movement IN ('expansion', 'contraction') AND s.in_from AND NOT s.in_to THEN 'transfer_out'
              WHEN s.movement IN ('expansion', 'contraction') AND s.in_to AND NOT s.in_from THEN 'transfer_in'
              ELSE s.movement END AS kind,
         CASE WHEN s.in_from THEN s.before_cents ELSE 0 END AS b,
         CASE WHEN s.in_to THEN s.after_cents ELSE 0 END AS a,
         s.events * (s.in_to::int - s.in_from::int) AS dc
  FROM seen s
  WHERE s.in_from OR s.in_to
),
-- the movements summed per month, kind and churn reason first (four sums per mart row), then pivoted: the pivot's
-- two dozen filtered sums run over those few hundred rows instead of every mart row
kinds AS (
  SELECT c.month, c.kind, c.churn_reason,
         sum(c.a) AS a, sum(c.b) AS b, sum(c.events)::bigint AS n, sum(c.dc)::bigint AS dc
  FROM cls c
  GROUP BY c.month, c.kind, c.churn_reason
),
flows AS (
  SELECT k.month,
         sum(k.a - k.b) AS net, sum(k.dc)::bigint AS net_customers,
         coalesce(sum(k.a) FILTER (WHERE k.kind = 'opening'), 0)          AS opening,
         coalesce(sum(k.a) FILTER (WHERE k.kind = 'new'), 0)              AS new,
         coalesce(sum(k.a - k.b) FILTER (WHERE k.kind = 'expansion'), 0)  AS expansion,
         coalesce(sum(k.a) FILTER (WHERE k.kind = 'reactivation'), 0)     AS reactivation,
         coalesce(sum(k.b - k.a) FILTER (WHERE k.kind = 'contraction'), 0) AS contraction,
         coalesce(sum(k.b) FILTER (WHERE k.kind = 'churn'), 0)            AS churn,
         coalesce(sum(k.b) FILTER (WHERE k.kind = 'churn' AND k.churn_reason = 'voluntary'), 0)   AS churn_vol,
         coalesce(sum(k.b) FILTER (WHERE k.kind = 'churn' AND k.churn_reason = 'involuntary'), 0) AS churn_invol,
         coalesce(sum(k.a) FILTER (WHERE k.kind = 'transfer_in'), 0)      AS transfer_in,
         coalesce(sum(k.b) FILTER (WHERE k.kind = 'transfer_out'), 0)     AS transfer_out,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'opening'), 0)::bigint      AS n_opening,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'new'), 0)::bigint          AS n_new,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'reactivation'), 0)::bigint AS n_reactivation,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'expansion'), 0)::bigint    AS n_expansion,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'contraction'), 0)::bigint  AS n_contraction,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'churn'), 0)::bigint        AS n_churn,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'churn' AND k.churn_reason = 'voluntary'), 0)::bigint   AS n_churn_vol,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'churn' AND k.churn_reason = 'involuntary'), 0)::bigint AS n_churn_invol,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'transfer_in'), 0)::bigint  AS n_transfer_in,
         coalesce(sum(k.n) FILTER (WHERE k.kind = 'transfer_out'), 0)::bigint AS n_transfer_out
  FROM kinds k
  GROUP BY k.month
),
balance AS (
  -- MRR at each month end computed point in time (mart_mrr_monthly, summed by plan and country in
  -- mart_mrr_balance_monthly), under the same filter: the plan held at month end
  SELECT mm.month, sum(mm.end_cents) AS end_cents, sum(mm.customers_end) AS customers_end
  FROM mart_mrr_balance_monthly mm
  WHERE (p_plans IS NULL OR mm.plan_code = ANY(p_plans)) AND (p_countries IS NULL OR mm.country = ANY(p_countries))
  GROUP BY mm.month
),
series AS (
  SELECT g.month::date AS month, b.history_start, b.first_month, b.current_month,
         coalesce(f.net, 0) AS net, coalesce(f.net_customers, 0) AS net_customers,
         f.opening, f.new, f.expansion, f.reactivation, f.contraction, f.churn, f.churn_vol, f.churn_invol,
         f.transfer_in, f.transfer_out, f.n_opening, f.n_new, f.n_reactivation, f.n_expansion, f.n_contraction,
         f.n_churn, f.n_churn_vol, f.n_churn_invol, f.n_transfer_in, f.n_transfer_out
  FROM b
  CROSS JOIN generate_series(b.first_month, b.current_month, interval '1 month') AS g(month)
  LEFT JOIN flows f ON f.month = g.month::date
),
run AS (
  SELECT s.*,
         sum(s.net) OVER w - s.net AS start_c,
         sum(s.net) OVER w AS end_c,
         (sum(s.net_customers) OVER w - s.net_customers)::bigint AS cust_start,
         (sum(s.net_customers) OVER w)::bigint AS cust_end,
         s.month = s.current_month OR (s.month = s.first_month AND s.history_start > s.first_month::timestamp AT TIME ZONE 'UTC') AS is_partial
  FROM series s
  WINDOW w AS (ORDER BY s.month)
),
out AS (
  SELECT r.month, r.is_partial, r.history_start, r.first_month,
         r.start_c, coalesce(r.opening, 0) AS opening, coalesce(r.new, 0) AS new, coalesce(r.expansion, 0) AS expansion,
         coalesce(r.reactivation, 0) AS reactivation, coalesce(r.contraction, 0) AS contraction,
         coalesce(r.churn, 0) AS churn, coalesce(r.churn_vol, 0) AS churn_vol, coalesce(r.churn_invol, 0) AS churn_invol,
         coalesce(r.transfer_in, 0) AS transfer_in, coalesce(r.transfer_out, 0) AS transfer_out, r.end_c,
         r.cust_start, coalesce(r.n_opening, 0)::bigint AS n_opening, coalesce(r.n_new, 0)::bigint AS n_new,
         coalesce(r.n_reactivation, 0)::bigint AS n_reactivation, coalesce(r.n_expansion, 0)::bigint AS n_expansion,
         coalesce(r.n_contraction, 0)::bigint AS n_contraction, coalesce(r.n_churn, 0)::bigint AS n_churn,
         coalesce(r.n_churn_vol, 0)::bigint AS n_churn_vol, coalesce(r.n_churn_invol, 0)::bigint AS n_churn_invol,
         coalesce(r.n_transfer_in, 0)::bigint AS n_transfer_in, coalesce(r.n_transfer_out, 0)::bigint AS n_transfer_out,
         r.cust_end,
         -- the base of the month's rates: customers (MRR) at its start, or at the history's start in its first month
         r.cust_start + coalesce(r.n_opening, 0) AS base_customers,
         r.start_c + coalesce(r.opening, 0) AS base_cents,
         r.is_partial AND NOT coalesce(p_include_partial, false) AS hide
  FROM run r
)
SELECT o.month, o.is_partial,
       CASE WHEN o.month = (date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC')::date THEN 'so far'
            WHEN o.is_partial THEN 'from ' || to_char(o.history_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') END,
       o.history_start,
       CASE WHEN o.history_start > o.first_month::timestamp AT TIME ZONE 'UTC'
            THEN (o.first_month + interval '1 month')::date ELSE o.first_month END,
       o.start_c, o.opening, o.new, o.expansion, o.reactivation, o.contraction, o.churn, o.churn_vol, o.churn_invol,
       o.transfer_in, o.transfer_out, o.end_c,
       o.cust_start, o.n_opening, o.n_new, o.n_reactivation, o.n_expansion, o.n_contraction, o.n_churn,
       o.n_churn_vol, o.n_churn_invol, o.n_transfer_in, o.n_transfer_out, o.cust_end,
       coalesce(bal.end_cents, 0), coalesce(bal.customers_end, 0)::bigint, coalesce(bal.end_cents, 0) - o.end_c,
       CASE WHEN NOT o.hide THEN round(o.n_churn::numeric / nullif(o.base_customers, 0), 4) END,
       CASE WHEN NOT o.hide THEN round(o.n_churn_vol::numeric / nullif(o.base_customers, 0), 4) END,
       CASE WHEN NOT o.hide THEN round(o.n_churn_invol::numeric / nullif(o.base_customers, 0), 4) END,
       CASE WHEN NOT o.hide THEN round((o.n_churn - o.n_reactivation)::numeric / nullif(o.base_customers, 0), 4) END,
       CASE WHEN NOT o.hide THEN round((o.churn + o.contraction) / nullif(o.base_cents, 0), 4) END,
       CASE WHEN NOT o.hide THEN round((o.churn + o.contraction - o.expansion - o.reactivation) / nullif(o.base_cents, 0), 4) END,
       round(o.end_c / nullif(o.cust_end, 0), 2),
       CASE WHEN NOT o.hide THEN round(o.end_c / nullif(o.cust_end, 0) / (nullif(o.n_churn, 0)::numeric / nullif(o.base_customers, 0)), 2) END,
       CASE WHEN NOT o.hide THEN round((o.new + o.expansion + o.reactivation) / nullif(o.contraction + o.churn, 0), 4) END,
       CASE WHEN NOT o.hide THEN round((o.base_cents + o.expansion - o.contraction - o.churn) / nullif(o.base_cents, 0), 4) END
FROM out o
LEFT JOIN balance bal ON bal.month = o.month
WHERE o.month BETWEEN coalesce(p_from, o.first_month) AND coalesce(p_to, o.month)
ORDER BY o.month
$fn$;
