// The "Share" line of every dashboard and report page: a snapshot download (/snapshot), a digest subscription
// (/digests) and an embed link (/embeds), each prefilled with the page's canonical URL. Kept apart from the routes so
// the pages that show it do not import the renderers that render them.
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { html, type Html } from '../html.ts';

/** Who may subscribe to digests and make embed links (the route table says the same: server/auth/access.ts). */
export const SHARING_ROLES = ['admin', 'manager'];

/** The share links of the page of `kind` `id` whose canonical query is `query` (no leading '?'). */
export function shareLinks(c: Context<Env>, kind: 'report' | 'dashboard', id: string, query: string): Html {
  const path = `/${kind}s/${id}${query ? `?${query}` : ''}`;
  const q = encodeURIComponent(path);
  const embed = `/embeds?resource=${encodeURIComponent(`${kind}:${id}`)}&locked=${encodeURIComponent(query)}`;
  return html`<p class="share">Share: <a href="/snapshot?path=${q}" download>Snapshot (HTML file)</a>${SHARING_ROLES.includes(c.get('user')?.role ?? '')
    ? html` · <a href="/digests?path=${q}">Email it weekly or monthly</a> · <a href="${embed}">Embed link</a>` : ''}</p>`;
}
