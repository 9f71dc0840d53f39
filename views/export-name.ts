// The one place export file names are built: the chart tile's PNG/SVG/CSV buttons (views/mq-chart.ts) and the CSV the
// server sends (Content-Disposition of /api/reports/<id>.csv) name a file after the report and its filters, e.g.
// mrr_trend_from-2026-01_plan-premium.csv — two downloads of one report under different filters never collide.

/** `report` plus the query string made file-name safe (at most 80 characters of it). */
export function exportFileBase(report: string, query: string): string {
  const p = query.replace(/[^a-z0-9=_-]+/gi, '_').replace(/=/g, '-').slice(0, 80);
  return `${report}${p ? '_' + p : ''}`;
}
