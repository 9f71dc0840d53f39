// Playing a title (README "Catalog, play and visits"). There are no video files: the player page simulates playback (views/player.ts) and
// reports the position it reached to POST /api/play/:titleId/progress, which keeps ONE watch_events row per viewing
// session — created by the first report, then updated (the furthest position as seconds_watched, completed once it
// reaches 90 % of the title's duration). A movie lasts its running time; a show plays its first episode, taken as
// 45 minutes (the dataset has seasons, not episodes). Only an account with a subscription in active or past_due may
// play (DESIGN.md: access is granted in those states); anyone else is told why and pointed to /plans.
import { Hono } from 'hono';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { noteLocalChange, readThrough, type ChangeCache, type Db, type Queryable } from '../db/index.ts';
import { page, html } from '../html.ts';
import { HttpError, badRequest, notFound } from '../errors.ts';
import { titleDetail, durationSeconds, watchEventsChanges, type Entitlement, type Viewer } from './catalog.ts';
import { titleId, posterUrl } from './params.ts';

/** Share of the duration at which a viewing counts as completed. */
export const COMPLETED_AT = 0.9;
/** A session older than this (or begun in an earlier UTC month) is not extended: the next report starts a new one, so
 *  a live write never changes a row dated in a closed month or far in the past. */
export const SESSION_MAX_MS = 12 * 3_600_000;

export async function entitlement(db: Queryable, userId: number): Promise<Entitlement> {
  const sub = await db.one<{ status: string }>(sql`
    SELECT status FROM subscriptions WHERE user_id = ${userId} AND status <> 'canceled' ORDER BY created_at DESC LIMIT 1`);
  const status = sub?.status ?? null;
  if (status === 'active' || status === 'past_due') return { allowed: true, status, reason: '' };
  return {
    allowed: false, status,
    reason: status === 'incomplete' ? 'Your subscription is waiting for its first payment.' : 'Playing needs an active subscription.',
  };
}

/** Where the user's latest unfinished viewing of the title stopped (0 when none or completed). */
export async function resumePosition(db: Queryable, userId: number, title: number): Promise<number> {
  const last = await db.one<{ seconds_watched: number; completed: boolean }>(sql`
    SELECT seconds_watched, completed FROM watch_events WHERE user_id = ${userId} AND title_id = ${title}
    ORDER BY started_at DESC, id DESC LIMIT 1`);
  return last && !last.completed ? last.seconds_watched : 0;
}

/** The change-feed names a user's Viewer depends on: their viewing history and their subscriptions (theirs, and the
 *  whole tables' for bulk writes; migrations 0018 and 0021). */
export const viewerChanges = (userId: number) =>
  [...watchEventsChanges(userId), 'subscriptions', `subscriptions:${userId}`];
/** Users whose Viewer a process keeps (the least recently read go first). */
export const VIEWERS_MAX = 10_000;

/**
 * The user's Viewer, read once and kept until the change feed says their subscriptions or viewing changed, in any
 * process (billing's writes and the progress API also drop it in their own process at once). Read from the primary:
 * a standby could still be behind the change the feed announced.
 */
export async function viewerOf(db: Db, cache: ChangeCache<Viewer>, userId: number): Promise<Viewer> {
  return readThrough(db, cache, String(userId), viewerChanges(userId), async () => {
    const [access, latest] = await Promise.all([entitlement(db, userId), db.query<{ title_id: number; seconds_watched: number; completed: boolean; finished: boolean }>(sql`
      SELECT DISTINCT ON (title_id) title_id, seconds_watched, completed, bool_or(completed) OVER (PARTITION BY title_id) AS finished
      FROM watch_events WHERE user_id = ${userId} ORDER BY title_id, started_at DESC, id DESC`)]);
    return {
      access,
      resume: new Map(latest.filter((r) => !r.completed).map((r) => [r.title_id, r.seconds_watched])),
      finished: new Set(latest.filter((r) => r.finished).map((r) => r.title_id)),
    };
  }, { max: VIEWERS_MAX });
}

export const playRoutes = new Hono<Env>();

playRoutes.get('/titles/:id/play', async (c) => {
  const deps = c.get('deps');
  const id = titleId(c);
  const t = await titleDetail(deps.readDb, id);
  if (!t) throw notFound(`No title ${id}`);
  const user = c.get('user')!;
  const access = await entitlement(deps.db, user.id);
  if (!access.allowed) {
    return c.html(page(c, {
      title: `Subscribe to play ${t.title}`,
      body: html`<main class="narrow play-refused">
        <h1>Subscribe to play “${t.title}”</h1>
        <p class="play-why">${access.reason} Subscriptions that are active (or whose renewal payment is being retried)
          can play every title.</p>
        <p><a class="button" href="/plans">Choose a plan</a> <a class="button secondary" href="/titles/${id}">Back to the title</a></p>
      </main>`,
    }), 403);
  }
  const duration = durationSeconds(t);
  const start = await resumePosition(deps.db, user.id, id);
  const episode = t.type === 'TV Show' ? 'Season 1, episode 1 (episodes are taken as 45 minutes)' : `${t.duration_minutes ?? 90} min`;
  return c.html(page(c, {
    title: `Playing ${t.title}`,
    script: 'player',
    body: html`<main class="player-page">
      <h1>${t.title} <span class="muted">${episode}</span></h1>
      <div class="player" data-title-id="${id}" data-duration="${duration}" data-start="${start}">
        <div class="screen"><img src="${posterUrl(id)}" width="200" height="300" alt=""><p class="screen-note" aria-hidden="true">Simulated playback: no video files exist.</p></div>
        <div class="controls">
          <button type="button" class="toggle" disabled>▶ Play</button>
          <label class="seek"><span class="visually-hidden">Position</span>
            <input type="range" min="0" max="${duration}" step="1" value="${start}" disabled></label>
          <span class="time" aria-hidden="true"></span>
          <label class="speed">Speed <select disabled>
            <option value="1">1×</option><option value="10">10×</option><option value="60">60×</option><option value="600">600×</option>
          </select></label>
        </div>
        <p class="status" role="status" aria-live="polite">The player needs JavaScript.</p>
      </div>
      <p><a href="/titles/${id}">‹ Back to ${t.title}</a></p>
    </main>`,
  }));
});

playRoutes.post('/api/play/:titleId/progress', async (c) => {
  const deps = c.get('deps');
  const id = titleId(c, 'titleId');
  const user = c.get('user')!;
  let body: any;
  try { body = await c.req.json(); } catch { throw badRequest('The body must be a JSON object', { body: 'not JSON' }); }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('The body must be a JSON object', { body: 'not an object' });
  const fields: Record<string, string> = {};
  const position = body.position;
  if (typeof position !== 'number' || !Number.isFinite(position) || position < 0) fields.position = 'must be a number of seconds ≥ 0';
  const session = body.session;
  if (session !== undefined && session !== null && !(Number.isSafeInteger(session) && session > 0)) fields.session = 'must be a viewing session id from an earlier answer';
  for (const k of Object.keys(body)) if (!['position', 'session'].includes(k)) fields[k] = 'unknown field';
  if (Object.keys(fields).length) throw badRequest(`Invalid ${Object.keys(fields).join(', ')}`, fields);

  const result = await deps.db.tx(async (q) => {
    const access = await entitlement(q, user.id);
    if (!access.allowed) throw new HttpError(403, `${access.reason} Choose a plan at /plans to play titles.`);
    const t = await q.one<{ type: string; duration_minutes: number | null }>(sql`SELECT type, duration_minutes FROM titles WHERE id = ${id}`);
    if (!t) throw notFound(`No title ${id}`);
    const duration = durationSeconds(t);
    if (position > duration) throw badRequest('Invalid position', { position: `must be at most the duration, ${duration} s` });
    const seconds = Math.floor(position);
    const now = deps.now();
    const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const since = new Date(Math.max(monthStart.getTime(), now.getTime() - SESSION_MAX_MS));
    const completedAt = Math.ceil(COMPLETED_AT * duration);
    const updated = session ? await q.one<{ id: number; seconds_watched: number; completed: boolean }>(sql`
      UPDATE watch_events SET seconds_watched = greatest(seconds_watched, ${seconds}),
                              completed = completed OR greatest(seconds_watched, ${seconds}) >= ${completedAt}
      WHERE id = ${session} AND user_id = ${user.id} AND title_id = ${id} AND started_at >= ${since} AND started_at <= ${now}
      RETURNING id, seconds_watched, completed`) : undefined;
    // No session yet, or one that may no longer change (another month, too old, not this user's): a new one, now.
    const row = updated ?? (await q.one<{ id: number; seconds_watched: number; completed: boolean }>(sql`
      INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed)
      VALUES (${user.id}, ${id}, ${now}, ${seconds}, ${seconds >= completedAt})
      RETURNING id, seconds_watched, completed`))!;
    return { ...row, duration };
  });
  noteLocalChange(...watchEventsChanges(user.id)); // this process's caches drop it now, before the NOTIFY comes back
  return c.json({ session: result.id, secondsWatched: result.seconds_watched, completed: result.completed, duration: result.duration });
});
