// Server-rendered pages share one layout (dark, Netflix-like theme; light on request). Values are escaped by hono/html,
// which drops booleans: write ARIA states as strings (aria-pressed="${String(x)}").
import type { Context } from 'hono';
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { Env } from './types.ts';
import { getCookie } from 'hono/cookie';
import { assetUrl } from './assets.ts';

export { html, raw };

// The theme choice (the POST /theme route is server/theme.ts).
export const THEME_COOKIE = 'mq_theme';
export const THEMES = ['auto', 'dark', 'light'] as const;
export type Theme = (typeof THEMES)[number];

/** The theme the user chose; "dark" when none (the product's default look). */
export function themeOf(c: Context<any>): Theme {
  const v = getCookie(c, THEME_COOKIE);
  return (THEMES as readonly string[]).includes(v ?? '') ? (v as Theme) : 'dark';
}

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface PageOptions {
  title: string;
  body: Html | string;
  /** Page entry script (bundled from views/), e.g. 'report-page'. */
  script?: string;
  /** An extra skip link, after "Skip to main content": e.g. the filter form of a dashboard or report page. */
  skipTo?: { href: string; label: string };
  /** No top bar (navigation, account, theme buttons): a page shown outside the product, e.g. an embed. */
  bare?: boolean;
}

/**
 * The whole page as a plain string: @hono/node-server then writes it at once with its length (and compressText can
 * size and compress it at once), where the String object html`` gives would be sent through a web stream.
 */
export async function page(c: Context<Env>, opts: PageOptions): Promise<string> {
  const user = c.get('user');
  const theme = themeOf(c);
  return (await html`<!DOCTYPE html>
<html lang="en"${theme === 'auto' ? '' : html` data-theme="${theme}"`}>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · Marquee</title>
<link rel="stylesheet" href="${assetUrl('app.css')}">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
${opts.script ? html`<script type="module" src="${assetUrl(opts.script + '.js')}"></script>` : ''}
</head>
<body>
<div class="skip-links"><a href="#main">Skip to main content</a>${opts.skipTo ? html`<a href="${opts.skipTo.href}">${opts.skipTo.label}</a>` : ''}</div>
${opts.bare ? '' : html`<header class="topbar">
  <a class="brand" href="/">MARQUEE</a>
  <nav aria-label="Main">
    <a href="/browse">Browse</a>
    ${user && user.role !== 'subscriber' ? html`<a href="/reports">Reports</a><a href="/dashboards">Dashboards</a>` : ''}
    ${user?.role === 'admin' || user?.role === 'manager' ? html`<a href="/embeds">Embeds</a>` : ''}
    ${user?.role === 'admin' ? html`<a href="/admin/users">Users</a><a href="/admin/audit">Audit</a>` : ''}
    ${user ? html`<a href="/account">${user.displayName}</a>
      <form method="post" action="/logout" class="inline"><button type="submit" class="link">Sign out</button></form>`
      : html`<a href="/login">Sign in</a>`}
    <form method="post" action="/theme" class="inline theme-toggle" aria-label="Colour theme">
      <input type="hidden" name="next" value="${c.req.path + (new URL(c.req.url).search)}">
      ${THEMES.map((t) => html`<button type="submit" name="theme" value="${t}" aria-pressed="${String(t === theme)}">${t[0].toUpperCase() + t.slice(1)}</button>`)}
    </form>
  </nav>
</header>`}
<div id="main">${opts.body}</div>
</body>
</html>`).toString();
}
