// Does viewing fall before a voluntary cancel in the data? For each subscription that ended voluntarily (and, as the
// control, involuntarily: payment failures, which viewing does not foretell) with at least 90 days of viewing history
// in the simulated window before its last 30 days: hours watched in the 30 days before the end against the same
// customer's average per 30 days before those (from the window start, or the subscription's start if later).
import sql from 'sql-template-tag';
import type { Queryable } from '../db/index.ts';

export interface ViewingDrop { end_reason: 'voluntary' | 'involuntary'; subscriptions: number; hours_last_30d: number; hours_earlier_per_30d: number; ratio: number; median_ratio: number }

export async function preCancelViewingDrop(q: Queryable): Promise<ViewingDrop[]> {
  return q.query<ViewingDrop>(sql`
    WITH win AS (SELECT coalesce((SELECT min(window_start) FROM simulation_runs), (SELECT min(started_at) FROM watch_events)) AS start),
    ended AS (
      SELECT s.id, s.user_id, s.end_reason, s.ended_at, greatest(s.created_at, win.start) AS from_at
      FROM subscriptions s, win
      WHERE s.end_reason IN ('voluntary', 'involuntary') AND s.ended_at - interval '30 days' >= greatest(s.created_at, win.start) + interval '90 days'
    ), per AS (
      SELECT e.end_reason,
             coalesce(sum(w.seconds_watched) FILTER (WHERE w.started_at >= e.ended_at - interval '30 days'), 0) / 3600.0 AS last30,
             coalesce(sum(w.seconds_watched) FILTER (WHERE w.started_at < e.ended_at - interval '30 days'), 0) / 3600.0
               * 30 / (extract(epoch FROM (e.ended_at - interval '30 days') - e.from_at) / 86400) AS earlier30
      FROM ended e
      LEFT JOIN watch_events w ON w.user_id = e.user_id AND w.started_at >= e.from_at AND w.started_at < e.ended_at
      GROUP BY e.id, e.end_reason, e.ended_at, e.from_at
    )
    SELECT end_reason, count(*)::int AS subscriptions, round(avg(last30), 3)::float8 AS hours_last_30d,
           round(avg(earlier30), 3)::float8 AS hours_earlier_per_30d,
           round(sum(last30) / nullif(sum(earlier30), 0), 3)::float8 AS ratio,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY last30 / earlier30) FILTER (WHERE earlier30 > 0))::numeric, 3)::float8 AS median_ratio
    FROM per GROUP BY end_reason ORDER BY end_reason DESC`);
}
