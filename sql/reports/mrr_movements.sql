-- @title MRR movements
-- @description Opening, new, expansion, reactivation, contraction and churned MRR per month, reconciling start to end MRR.
-- @definition Every change of a customer's MRR is one movement in the month it happens (a churn and a return in the
-- @definition same month are both counted). opening: MRR held when the history starts (never "new"). new: a customer's
-- @definition first paid subscription. reactivation: a former customer pays again. churn: MRR lost when the
-- @definition customer's last subscription ends (at the end of the paid period). expansion / contraction: a paying
-- @definition customer's MRR goes up / down. Check: end_mrr = start_mrr + opening + new + expansion + reactivation
-- @definition + transfer_in − contraction − churn − transfer_out; reconciliation_gap = MRR at month end computed
-- @definition point in time (mrr_at_month_end) − end_mrr, 0 in every month; a closed month that breaks it fails this report.
-- @definition Under a plan filter a movement counts under the plan held before it (churn, the old plan of a change)
-- @definition and after it (opening, new, reactivation, the new plan of a change); a plan change across the filter's
-- @definition edge is a transfer in / out, so each month starts where the month before ended. Country: the account's.
-- @definition The month in progress is partial ("so far", partial = true) and the history's first month counts
-- @definition from the history start (opening); definitions: sql/schema/0013_metrics.sql, mrr_metrics_monthly().
-- @roles admin analyst manager
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
SELECT m.month, m.partial, m.period_note,
       round(m.start_cents / 100.0, 2)        AS start_mrr,
       round(m.opening_cents / 100.0, 2)      AS opening,
       round(m.new_cents / 100.0, 2)          AS new,
       round(m.expansion_cents / 100.0, 2)    AS expansion,
       round(m.reactivation_cents / 100.0, 2) AS reactivation,
       round(m.contraction_cents / 100.0, 2)  AS contraction,
       round(m.churn_cents / 100.0, 2)        AS churn,
       round(m.transfer_in_cents / 100.0, 2)  AS transfer_in,
       round(m.transfer_out_cents / 100.0, 2) AS transfer_out,
       round(m.end_cents / 100.0, 2)          AS end_mrr,
       round((m.end_cents - m.start_cents) / 100.0, 2) AS net_change,
       round(m.balance_end_cents / 100.0, 2)  AS mrr_at_month_end,
       round(m.reconciliation_gap_cents / 100.0, 2) AS reconciliation_gap
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[]) m
WHERE mrr_assert_reconciled(m.reconciliation_gap_cents = 0 OR m.month >= mrr_checked_before(),
        'month ' || m.month || ', gap ' || m.reconciliation_gap_cents || ' cents (plans ' || coalesce(array_to_string(:plan::text[], ','), 'all')
        || ', countries ' || coalesce(array_to_string(:country::text[], ','), 'all') || ')')
ORDER BY m.month
