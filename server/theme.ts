// The theme choice: dark (default), light, or auto (follow the OS). The header's form posts here and works without
// JavaScript: a cookie remembers the choice and page() renders it as <html data-theme>. With JavaScript the page
// applies it in place (views/theme.ts) and posts the same form in the background. The cookie and its values live in
// html.ts (page() reads them), below this route and the forms it uses.
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import type { Env } from './types.ts';
import { formBody, safeNext } from './auth/forms.ts';
import { badRequest } from './errors.ts';
import { THEME_COOKIE, THEMES } from './html.ts';

export const theme = new Hono<Env>();

theme.post('/theme', async (c) => {
  const body = await formBody(c);
  const value = body.theme;
  if (!(THEMES as readonly string[]).includes(value)) throw badRequest(`theme must be one of ${THEMES.join(', ')}`, { theme: `got "${value ?? ''}"` });
  setCookie(c, THEME_COOKIE, value, {
    path: '/', maxAge: 400 * 24 * 3600, sameSite: 'Lax', httpOnly: true, secure: !!c.get('deps').config.secureCookies,
  });
  const back = body.next ?? (() => { try { const r = new URL(c.req.header('referer') ?? ''); return r.pathname + r.search; } catch { return '/'; } })();
  return c.redirect(safeNext(back), 303);
});
