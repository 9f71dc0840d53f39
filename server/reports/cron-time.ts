// When a mart's cron schedule (UTC) fires next and fired last, for "next refresh" in answers and for deciding
// which marts are due. Fields come from node-cron's own parser; matching follows node-cron (all fields must match).
import cron from 'node-cron';

interface Fields { second: Set<number>; minute: Set<number>; hour: Set<number>; dom: Set<number>; month: Set<number>; dow: Set<number> }
const cache = new Map<string, Fields>();

function fields(pattern: string): Fields {
  let f = cache.get(pattern);
  if (!f) {
    const p = cron.parse(pattern);
    const nums = (a: (number | string)[]) => new Set(a.map(Number).filter((n) => Number.isFinite(n)));
    const dow = nums(p.dayOfWeek);
    if (dow.has(7)) dow.add(0);
    f = { second: nums(p.second), minute: nums(p.minute), hour: nums(p.hour), dom: nums(p.dayOfMonth), month: nums(p.month), dow };
    cache.set(pattern, f);
  }
  return f;
}

const MIN = 60_000;
const dayMatches = (f: Fields, t: Date) => f.month.has(t.getUTCMonth() + 1) && f.dom.has(t.getUTCDate()) && f.dow.has(t.getUTCDay());

/** First fire time strictly after `from` (minute resolution), within 2 years; null if none. */
export function nextFire(pattern: string, from: Date): Date | null {
  const f = fields(pattern);
  let t = Math.floor(from.getTime() / MIN) * MIN + MIN;
  const limit = t + 2 * 366 * 1440 * MIN;
  while (t < limit) {
    const d = new Date(t);
    if (!dayMatches(f, d)) { t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1); continue; }
    if (!f.hour.has(d.getUTCHours())) { t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1); continue; }
    if (f.minute.has(d.getUTCMinutes())) return d;
    t += MIN;
  }
  return null;
}

/** Last fire time at or before `at` (minute resolution), within 2 years; null if none. */
export function previousFire(pattern: string, at: Date): Date | null {
  const f = fields(pattern);
  let t = Math.floor(at.getTime() / MIN) * MIN;
  const limit = t - 2 * 366 * 1440 * MIN;
  while (t > limit) {
    const d = new Date(t);
    if (!dayMatches(f, d)) { t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - MIN; continue; }
    if (!f.hour.has(d.getUTCHours())) { t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours()) - MIN; continue; }
    if (f.minute.has(d.getUTCMinutes())) return d;
    t -= MIN;
  }
  return null;
}

/** Whether the schedule fires at the whole second holding `at` (UTC; 5-field patterns fire at second 0). The job
 *  scheduler (server/jobs) asks this once a second of its own clock, so an instance names each run by this instant. */
export function firesAt(pattern: string, at: Date): boolean {
  const f = fields(pattern);
  return f.second.has(at.getUTCSeconds()) && f.minute.has(at.getUTCMinutes()) && f.hour.has(at.getUTCHours()) && dayMatches(f, at);
}
