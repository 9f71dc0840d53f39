// The subscriber-facing catalog (README "Catalog, play and visits"): /browse (shelves, search, filters, pages), /titles/:id (every field and
// "More like this") and each title's drawn poster. Anonymous visitors may browse and search — it is the shop window —
// and see every title's page; playing needs a signed-in account with a subscription in active or past_due
// (server/browse/play.ts).
import { Hono } from 'hono';
import type { Context } from 'hono';
import sql from 'sql-template-tag';
import { readThrough } from '../db/index.ts';
import type { Env } from '../types.ts';
import { page, html, raw, themeOf, type Html, type Theme } from '../html.ts';
import { EncodedText, sendEncoded } from '../compress.ts';
import { notFound } from '../errors.ts';
import {
  browseSnapshot, createBrowseCache, titleDetail, moreLikeThis, continueWatching,
  memo, watchEventsChanges, cardsById, PAGE_SIZE, type TitleCard, type BrowseSnapshot, type BrowseCache, type ContinueCard,
} from './catalog.ts';
import { findTitles, searchIndexOf, catalogGenerationOf } from './search-index.ts';
import { parseBrowse, queryString, titleId, posterUrl, TYPES, MAX_QUERY, type BrowseState } from './params.ts';
import { posterSvg, posterEtag } from './poster.ts';
import { entitlement, viewerOf } from './play.ts';
import { personalRows } from '../ml/recommend-serve.ts';
import type { Queryable } from '../db/index.ts';

const HTML = 'text/html; charset=UTF-8';
/** A result page's markup (the same for everyone) and, by theme, the whole page an anonymous visitor gets. */
interface ResultMarkup { main: string; pages: Map<Theme, EncodedText> }

/** Titles in a title page's "More like this". */
const SIMILAR_SHOWN = 12;

export const browseRoutes = new Hono<Env>();

export function browseCache(c: Context<Env>): BrowseCache {
  const caches = c.get('deps').caches;
  return caches.browse ??= createBrowseCache();
}

export async function snapshotFor(c: Context<Env>): Promise<BrowseSnapshot> {
  const deps = c.get('deps');
  const cache = browseCache(c);
  const warm = !!cache.snapshot;
  const snap = await browseSnapshot(deps.readDb, cache, deps.now(), await catalogGenerationOf(deps.db));
  // a visitor of the catalog searches soon: pages viewed start building the search index once the shelves are there
  // (not in the request that computed the first snapshot: a cold process opens few connections at once); errors show
  // when a search awaits it
  if (warm) void searchIndexOf(deps.db).catch(() => {});
  return snap;
}


function meta(t: TitleCard): string {
  const length = t.type === 'TV Show' ? (t.seasons ? `${t.seasons} season${t.seasons === 1 ? '' : 's'}` : 'Series')
    : t.duration_minutes ? `${Math.floor(t.duration_minutes / 60) ? `${Math.floor(t.duration_minutes / 60)} h ` : ''}${t.duration_minutes % 60} min` : 'Film';
  return [t.release_year, t.rating, length].filter(Boolean).join(' · ');
}

function card(t: TitleCard, extra: Html | string = '') {
  return html`<li class="title-card"><a href="/titles/${t.id}"><img src="${posterUrl(t.id)}" width="200" height="300"
    loading="lazy" decoding="async" alt="${t.title}"></a>${extra}</li>`;
}

function shelf(id: string, name: string, titles: TitleCard[], link?: string, extra?: (t: TitleCard) => Html | string, why?: string) {
  if (!titles.length) return '';
  const hid = `shelf-${id.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
  return html`<section class="shelf" aria-labelledby="${hid}">
    <h2 id="${hid}">${link ? html`<a href="${link}">${name} <span aria-hidden="true">›</span></a>` : name}</h2>
    ${why ? html`<p class="shelf-why muted">${why}</p>` : ''}
    <ul class="shelf-row">${titles.map((t) => card(t, extra?.(t) ?? ''))}</ul>
  </section>`;
}

const clock = (s: number) => {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
};

function progressBar(t: ContinueCard) {
  const pct = Math.min(100, Math.round((100 * t.seconds_watched) / t.duration_seconds));
  return html`<progress max="100" value="${pct}" aria-label="${t.title}: ${pct} % watched">${pct} %</progress>`;
}

function searchForm(state: BrowseState | undefined, snap: BrowseSnapshot) {
  const v = state?.values ?? {};
  const select = (name: string, label: string, options: [string, string][]) => html`<div class="field">
    <label for="b-${name}">${label}</label>
    <select id="b-${name}" name="${name}">
      <option value="">Any</option>
      ${options.map(([value, text]) => html`<option value="${value}" ${v[name as keyof typeof v] === value ? html`selected` : ''}>${text}</option>`)}
    </select></div>`;
  return html`<form class="browse-form" method="get" action="/browse" role="search" aria-label="Search the catalog">
    <div class="field search">
      <label for="b-q">Search titles, cast and directors</label>
      <input id="b-q" type="search" name="q" value="${v.q ?? ''}" maxlength="${MAX_QUERY}" placeholder="Stranger Things, Tom Hanks, Scorsese…" autocomplete="off">
    </div>
    ${select('type', 'Type', [['movie', 'Movies'], ['show', 'TV shows']])}
    ${select('genre', 'Genre', [...snap.genres.keys()].map((g) => [g, g]))}
    ${select('country', 'Country', [...snap.countries.keys()].map((g) => [g, g]))}
    ${select('rating', 'Rating', snap.ratings.map((r) => [r, r]))}
    <div class="field year">
      <label for="b-year">Release year</label>
      <input id="b-year" type="number" name="year" inputmode="numeric" min="${snap.years[0]}" max="${snap.years[1]}" value="${v.year ?? ''}">
    </div>
    <button type="submit">Search</button>
    ${state && Object.keys(v).length ? html`<a class="button secondary" href="/browse">Clear</a>` : ''}
  </form>`;
}

/** A signed-in subscriber's recommendation rows (server/ml/recommend-serve.ts); none without a subscription giving access. */
async function recommendedShelves(db: Queryable, userId: number) {
  if (!(await entitlement(db, userId)).allowed) return [];
  const rows = await personalRows(db, userId);
  const byId = await cardsById(db, rows.flatMap((r) => r.titleIds));
  return rows.map((r) => ({ ...r, titles: r.titleIds.map((id) => byId.get(id)).filter((t): t is TitleCard => !!t) }));
}

browseRoutes.get('/browse', async (c) => {
  const deps = c.get('deps');
  const snap = await snapshotFor(c);
  const url = new URL(c.req.url);
  const state = parseBrowse(url.searchParams, snap);
  if (state.canonical !== url.search) return c.redirect(`/browse${state.canonical}`, 302);
  const user = c.get('user');
  const filtering = Object.keys(state.values).length > 0;

  const cache = browseCache(c);
  // The markup shared by everyone (the form, the shelves, a result page) is rendered once per snapshot and kept as a
  // string; only the signed-in user's Continue watching is rendered per request.
  const text = async (h: Html) => (await h).toString();
  if (!filtering) {
    // Continue watching and the recommendation rows are rendered once per user and kept until their viewing changes
    // (or the snapshot does); read from the primary, whose change feed says when to read again (a standby could
    // still be behind the change).
    const resume = user ? (await readThrough(deps.db, cache.continued, String(user.id), watchEventsChanges(user.id),
      async () => {
        const [cards, recs] = await Promise.all([continueWatching(deps.db, user.id), recommendedShelves(deps.db, user.id)]);
        return { serial: snap.serial, html: await text(html`${cards.length ? shelf('continue', 'Continue watching', cards, undefined, (t) => progressBar(t as ContinueCard)) : ''}
        ${recs.map((r) => shelf(r.id, r.name, r.titles, undefined, undefined, r.why))}`) };
      }, { usable: (v) => v.serial === snap.serial })).html : '';
    const form = await memo(cache, snap, 'html:form', () => text(searchForm(undefined, snap)));
    const shelves = await memo(cache, snap, 'html:shelves', () => text(html`${snap.shelves.map((s) => shelf(s.id, s.name, s.titles, s.link))}
        ${snap.shelves.every((s) => !s.titles.length) ? html`<p class="muted">The catalog is empty: load it with <code>npm run etl</code>.</p>` : ''}`));
    const shelvesPage = () => page(c, {
      title: 'Browse',
      body: html`<main class="browse">
        <h1 class="visually-hidden">Browse the catalog</h1>
        ${raw(form)}
        ${raw(resume)}
        ${raw(shelves)}
      </main>`,
    });
    if (user) return c.html(await shelvesPage());
    // an anonymous visitor's whole page depends only on the snapshot and the theme: kept encoded (server/compress.ts)
    return sendEncoded(c, await memo(cache, snap, `page:${themeOf(c)}`, async () => new EncodedText(await shelvesPage())), HTML);
  }

  // the search index of the catalog now (rebuilt when a titles load moved its generation): a page is kept under both
  const index = await searchIndexOf(deps.db);
  const result = await memo(cache, snap, `html:${index.generation}:${state.canonical}`, async () => {
    const result = await findTitles(index, state.filters, snap.popularIds, state.page);
    const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
    const described = [
      state.filters.type ? (state.filters.type === 'Movie' ? 'movies' : 'TV shows') : '',
      state.values.genre, state.values.country && `from ${state.values.country}`, state.values.rating && `rated ${state.values.rating}`,
      state.values.year && `released in ${state.values.year}`,
    ].filter(Boolean).join(', ');
    const heading = state.values.q ? html`Results for “${state.values.q}”` : html`Titles`;
    return text(html`<main class="browse">
      ${searchForm(state, snap)}
      <div class="results-head">
        <h1>${heading}</h1>
        <p class="muted" role="status">${result.total.toLocaleString('en-US')} title${result.total === 1 ? '' : 's'}${described ? ` · ${described}` : ''}${pages > 1 ? ` · page ${state.page} of ${pages}` : ''}</p>
      </div>
      ${result.titles.length ? html`<ul class="title-grid">${result.titles.map((t) => card(t, html`<span class="card-meta">${meta(t)}</span>`))}</ul>`
        : html`<p>${result.total ? `Page ${state.page} is past the last page (${pages}).` : 'Nothing matches. Try fewer filters or another spelling.'}</p>`}
      ${pages > 1 ? html`<nav class="pager" aria-label="Result pages">
        ${state.page > 1 ? html`<a rel="prev" href="/browse${queryString(state.values, { page: String(Math.min(state.page - 1, pages)) })}">‹ Previous</a>` : ''}
        <span>Page ${state.page} of ${pages}</span>
        ${state.page < pages ? html`<a rel="next" href="/browse${queryString(state.values, { page: String(state.page + 1) })}">Next ›</a>` : ''}
      </nav>` : ''}
    </main>`).then((main): ResultMarkup => ({ main, pages: new Map() }));
  });
  const resultPage = () => page(c, { title: state.values.q ? `“${state.values.q}”` : 'Browse', body: raw(result.main) });
  if (user) return c.html(await resultPage());
  // anonymous: the whole page, encoded, kept with the result's markup (one cache entry per result page)
  const theme = themeOf(c);
  const encoded = result.pages.get(theme) ?? result.pages.set(theme, new EncodedText(await resultPage())).get(theme)!;
  return sendEncoded(c, encoded, HTML);
});

function links(items: string[], param: string) {
  return items.map((x, i) => html`${i ? ', ' : ''}<a href="/browse?${new URLSearchParams({ [param]: x }).toString()}">${x}</a>`);
}

browseRoutes.get('/titles/:id', async (c) => {
  const deps = c.get('deps');
  const id = titleId(c);
  const snap = await snapshotFor(c);
  const cache = browseCache(c);
  const t = await memo(cache, snap, `title:${id}`, () => titleDetail(deps.readDb, id));
  if (!t) throw notFound(`No title ${id}`);
  const shared = await memo(cache, snap, `similar:${id}`, () => moreLikeThis(deps.readDb, id, snap.popularIds, SIMILAR_SHOWN * 2));
  const user = c.get('user');
  // what this user may do and has watched: kept per user until their subscriptions or viewing change (no query)
  const viewer = user ? await viewerOf(deps.db, cache.viewers, user.id) : undefined;
  // the same for everyone, less what this user has finished
  const similar = shared.filter((s) => !viewer?.finished.has(s.id)).slice(0, SIMILAR_SHOWN);
  const access = viewer?.access;
  const resume = access?.allowed ? viewer!.resume.get(id) ?? 0 : 0;
  const kind = t.type === 'TV Show' ? 'TV show' : 'Movie';
  let play: Html;
  if (!user) {
    play = html`<p class="play-row"><a class="button play" href="/login?next=${encodeURIComponent(`/titles/${id}/play`)}">Sign in to play</a>
      <span class="muted">New here? <a href="/plans">Choose a plan</a>.</span></p>`;
  } else if (!access!.allowed) {
    play = html`<div class="play-row"><button type="button" class="play" disabled aria-describedby="play-why">▶ Play</button>
      <p id="play-why" class="play-why">${access!.reason} <a href="/plans">Choose a plan</a> to start watching.</p></div>`;
  } else {
    play = html`<p class="play-row"><a class="button play" href="/titles/${id}/play">▶ ${resume ? `Resume (${clock(resume)} in)` : 'Play'}</a>
      ${t.type === 'TV Show' ? html`<span class="muted">Season 1, episode 1 (about 45 min)</span>` : ''}</p>`;
  }
  return c.html(page(c, {
    title: t.title,
    body: html`<main class="title-page">
      <div class="title-hero">
        <img class="title-poster" src="${posterUrl(t.id)}" width="200" height="300" alt="">
        <div class="title-info">
          <p class="kind">${kind}</p>
          <h1>${t.title}</h1>
          <p class="title-meta">${meta(t)}</p>
          ${t.description ? html`<p class="description">${t.description}</p>` : ''}
          ${play}
          <dl class="facts">
            ${t.genres.length ? html`<dt>Genres</dt><dd>${links(t.genres, 'genre')}</dd>` : ''}
            ${t.cast.length ? html`<dt>Cast</dt><dd>${links(t.cast, 'q')}</dd>` : ''}
            ${t.directors.length ? html`<dt>Director${t.directors.length > 1 ? 's' : ''}</dt><dd>${links(t.directors, 'q')}</dd>` : ''}
            ${t.countries.length ? html`<dt>Countries</dt><dd>${links(t.countries, 'country')}</dd>` : ''}
            <dt>Released</dt><dd>${t.release_year ? html`<a href="/browse?year=${t.release_year}">${t.release_year}</a>` : 'unknown'}</dd>
            <dt>Rating</dt><dd>${t.rating ? html`<a href="/browse?${new URLSearchParams({ rating: t.rating }).toString()}">${t.rating}</a>` : 'not rated'}</dd>
            <dt>${t.type === 'TV Show' ? 'Seasons' : 'Running time'}</dt><dd>${t.type === 'TV Show' ? t.seasons ?? 'unknown' : t.duration_minutes ? `${t.duration_minutes} min` : 'unknown'}</dd>
            <dt>Added</dt><dd>${t.date_added ?? 'unknown'}</dd>
            <dt>Catalog id</dt><dd>${t.show_id}</dd>
          </dl>
        </div>
      </div>
      ${similar.length ? shelf('similar', 'More like this', similar) : ''}
    </main>`,
  }));
});

browseRoutes.get('/titles/:id/poster.svg', async (c) => {
  const id = titleId(c);
  const row = await memo(browseCache(c), await snapshotFor(c), `poster:${id}`, () => c.get('deps').readDb.one<{ title: string; type: string; release_year: number | null; genres: string[] }>(sql`
    SELECT t.title, t.type, t.release_year,
      ARRAY(SELECT g.name FROM title_genres tg JOIN genres g ON g.id = tg.genre_id WHERE tg.title_id = t.id ORDER BY g.name) AS genres
    FROM titles t WHERE t.id = ${id}`));
  if (!row) throw notFound(`No title ${id}`);
  const input = { id, title: row.title, type: row.type, releaseYear: row.release_year, genres: row.genres };
  const etag = posterEtag(input);
  // Public: a poster is the same for everyone. A day fresh, then revalidated by ETag (it changes only with its title).
  c.header('Cache-Control', 'public, max-age=86400, stale-while-revalidate=604800');
  c.header('ETag', etag);
  if ((c.req.header('if-none-match') ?? '').split(/\s*,\s*/).includes(etag)) return c.body(null, 304);
  c.header('Content-Type', 'image/svg+xml; charset=utf-8');
  return c.body(posterSvg(input));
});

export { TYPES };
