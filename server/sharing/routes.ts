// Sharing routes: GET /snapshot?path=… (a dashboard or report as one HTML file, downloaded), and the digests form —
// GET /digests (your subscriptions; ?path=… prefills the form), POST /digests (subscribe), POST /digests/:id/delete
// (unsubscribe). links.ts has the share line the dashboard and report pages show.
import { Hono, type Context } from 'hono';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { HttpError } from '../errors.ts';
import { field, formBody, formError, notice, selectField } from '../auth/forms.ts';
import { renderSnapshot } from './snapshot.ts';
import { FREQUENCIES, listSubscriptions, subscribe, unsubscribe } from './digests.ts';
import { auditContext } from '../admin/audit.ts';

export const sharing = new Hono<Env>();

sharing.get('/snapshot', async (c) => {
  const path = c.req.query('path');
  if (!path) throw new HttpError(400, 'path is required: /snapshot?path=/dashboards/<id> or /reports/<id> with its query', { path: 'required' });
  const snap = await renderSnapshot(c.get('deps'), c.get('user')!.role, path);
  c.header('Content-Type', 'text/html; charset=utf-8');
  c.header('Content-Disposition', `attachment; filename="${snap.filename}"`);
  c.header('Cache-Control', 'private, no-store');
  return c.body(snap.html);
});

const NOTICES: Record<string, string> = { subscribed: 'Subscribed: the first digest goes out within a minute.', unsubscribed: 'Unsubscribed.',
  gone: 'You have no such subscription (already ended?): nothing changed.' };

async function digestsPage(c: Context<Env>, o: { path?: string; frequency?: string; errors?: Record<string, string>; message?: string; status?: 200 | 400 | 403 | 404 } = {}) {
  const user = c.get('user')!;
  const subs = await listSubscriptions(c.get('deps').db, user.id);
  const when = (d: Date | null) => d ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : '';
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Digests',
    body: html`<main class="narrow">
  <h1>Digests</h1>
  <p class="muted">A dashboard or report mailed to you as a snapshot (one HTML file) every week or month, with the filters
    it had when you subscribed. The first one goes out within a minute, then one each Monday or each 1st (UTC).</p>
  ${notice(NOTICES[c.req.query('done') ?? ''])}
  <section class="card">
    <h2>Subscribe</h2>
    ${formError(o.message)}
    <form method="post" action="/digests" novalidate>
      ${field({ name: 'path', label: 'Dashboard or report (its address, with filters)', value: o.path ?? c.req.query('path') ?? '', error: o.errors?.path,
        required: true, maxlength: 4000, hint: 'e.g. /dashboards/executive_overview?period=6m — the "Email it" link of a page fills it in' })}
      ${selectField({ name: 'frequency', label: 'How often', options: FREQUENCIES, value: o.frequency ?? 'weekly', error: o.errors?.frequency })}
      <p><button type="submit">Subscribe</button></p>
    </form>
  </section>
  <section class="card">
    <h2>Your subscriptions</h2>
    ${subs.length ? html`<div class="table-wrap"><table><thead><tr><th>Page</th><th>How often</th><th>Last digest</th><th></th></tr></thead><tbody>
    ${subs.map((s) => html`<tr><td><a href="${s.path}">${s.title}</a><br><small class="muted">${s.path}</small></td><td>${s.frequency}</td>
      <td>${s.last_period ? html`${s.last_period}: ${s.last_status}${s.last_sent_at ? ` ${when(s.last_sent_at)}` : ''}${s.last_error ? html`<br><small class="muted">${s.last_error}</small>` : ''}` : 'none yet'}</td>
      <td><form method="post" action="/digests/${s.id}/delete"><button type="submit" class="secondary">Unsubscribe</button></form></td></tr>`)}
    </tbody></table></div>` : html`<p class="muted">None yet: use the "Email it" link on a dashboard or report.</p>`}
  </section>
</main>`,
  }), o.status ?? 200);
}

sharing.get('/digests', (c) => digestsPage(c));

sharing.post('/digests', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  const deps = c.get('deps');
  try {
    await subscribe(deps.db, deps, user, { path: form.path?.trim(), frequency: form.frequency }, auditContext(c));
  } catch (e) {
    if (e instanceof HttpError && [400, 403, 404].includes(e.status)) {
      return digestsPage(c, { path: form.path, frequency: form.frequency, errors: e.fields?.frequency ? e.fields : { path: e.message }, message: e.message, status: e.status as 400 });
    }
    throw e;
  }
  return c.redirect('/digests?done=subscribed', 303);
});

sharing.post('/digests/:id/delete', async (c) => {
  const id = Number(c.req.param('id'));
  const deps = c.get('deps');
  // Unsubscribing is idempotent: one already ended (or another user's, not told apart) says so and changes nothing.
  const ended = Number.isSafeInteger(id) && id > 0 && await unsubscribe(deps.db, c.get('user')!.id, id, auditContext(c));
  return c.redirect(`/digests?done=${ended ? 'unsubscribed' : 'gone'}`, 303);
});
