-- @title MRR reconciliation check
-- @description Does every month reconcile, in total, for each plan and for each customer country? A staff check.
-- @definition For each month and segment (all customers, each plan, each account country): start MRR + opening + new
-- @definition + expansion + reactivation + transfer_in − contraction − churn − transfer_out = end MRR by construction of
-- @definition the movements (events, mart_mrr_movements), and gap = MRR at month end computed point in time
-- @definition (mart_mrr_monthly, the latest subscription event of every subscription) − that end. status: ok, or
-- @definition pending for a month that closed after a mart's last refresh. A closed month with a gap fails this
-- @definition report (and MRR movements) with an error naming it. Definitions: mrr_metrics_monthly(), sql/schema/0013_metrics.sql.
-- @marts mart_mrr_reconciliation
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @chart rect x=month:O y=segment:N color=gap:Q title="Reconciliation gap per month and segment (USD; 0 everywhere)"
-- Each segment's months come from mart_mrr_reconciliation (mrr_metrics_monthly() per segment, once per refresh); the
-- status and the loud failure are decided here, against the refreshes of the MRR marts that build read.
SELECT x.month, x.partial, x.segment,
       round(x.start_cents / 100.0, 2) AS start_mrr,
       round(x.net_movements_cents / 100.0, 2) AS net_movements,
       round(x.end_cents / 100.0, 2) AS end_mrr,
       round(x.balance_end_cents / 100.0, 2) AS mrr_at_month_end,
       round(x.reconciliation_gap_cents / 100.0, 2) AS gap,
       x.customer_gap,
       CASE WHEN x.month >= x.checked_before THEN 'pending' ELSE 'ok' END AS status
FROM mart_mrr_reconciliation x
WHERE x.month BETWEEN coalesce(:from::date, '-infinity'::date) AND coalesce(:to::date, 'infinity'::date)
  AND mrr_assert_reconciled((x.reconciliation_gap_cents = 0 AND x.customer_gap = 0) OR x.month >= x.checked_before,
        'month ' || x.month || ', ' || x.segment || ', gap ' || x.reconciliation_gap_cents || ' cents, '
        || x.customer_gap || ' customers')
ORDER BY x.month, x.ord, x.segment
