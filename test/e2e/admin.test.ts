// In Chromium: an admin signs in, creates a user, changes the role, disables the user, and finds all of it in the
// audit log — plain forms, no JavaScript needed, no console errors (so no CSP violations either).
import { test } from 'uvu';
import { defaultConfig } from '../../server/config.ts';
import * as assert from 'uvu/assert';
import type { Browser, Page } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser, testOutbox } from '../helpers/auth.ts';

const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
let page: Page;
let errors: string[];
const outbox = testOutbox();

// Chromium logs every 4xx document as a console error; the wrong password (401) and the invalid form (400) are intended.
const unexpected = () => errors.filter((e) => !/^Failed to load resource: the server responded with a status of 40[01] /.test(e));

test.before(async () => {
  server = await startTestServer({ db: t.db, config: defaultConfig({ outboxDir: outbox.dir }) });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  errors = watchErrors(page);
});
test.after(async () => { await browser?.close(); await server?.close(); outbox.remove(); });

test('admin: sign in, create a user, change the role, disable, see it all in the audit log', async () => {
  const admin = await createUser(t.db, { role: 'admin', email: 'chief@marquee.example', name: 'Chief Admin' });

  await page.goto(`${server.url}/admin/users`);
  assert.match(new URL(page.url()).pathname, /^\/login$/, 'anonymous: sent to sign in');
  await page.fill('#f-email', admin.email);
  await page.fill('#f-password', 'a wrong password');
  await page.click('main button[type=submit]');
  assert.match(await page.textContent('.form-error') ?? '', /do not match/);
  assert.is(await page.inputValue('#f-email'), admin.email, 'the email is kept');
  await screenshot(page, 'admin-01-login-error');
  await page.fill('#f-password', admin.password);
  await page.click('main button[type=submit]');
  await page.waitForURL(/\/admin\/users$/);
  assert.match(await page.textContent('h1') ?? '', /Users/);
  await screenshot(page, 'admin-00-users');

  await page.click('text=New user');
  await page.fill('#f-email', 'bad email');
  await page.fill('#f-display_name', 'Dana Data');
  await page.click('main button[type=submit]');
  assert.match(await page.textContent('#f-email-error') ?? '', /Enter an email address/);
  assert.is(await page.inputValue('#f-display_name'), 'Dana Data');
  await screenshot(page, 'admin-02-create-validation');
  await page.fill('#f-email', 'dana@marquee.example');
  await page.selectOption('#f-role', 'analyst');
  await page.click('main button[type=submit]');
  const temp = (await page.textContent('#temporary-password'))?.trim();
  assert.ok(temp && temp.length >= 16, 'temporary password shown');
  await screenshot(page, 'admin-03-created');

  await page.click('text=Go to the user');
  assert.match(await page.textContent('h1') ?? '', /Dana Data/);
  await page.selectOption('#f-role', 'manager');
  await page.click('text=Save changes');
  assert.match(await page.textContent('.notice') ?? '', /Saved/);
  assert.is(await page.inputValue('#f-role'), 'manager');
  await page.click('button:has-text("Disable")');
  assert.match(await page.textContent('.notice') ?? '', /disabled/);
  assert.ok(await page.isVisible('button:has-text("Enable")'));
  await screenshot(page, 'admin-04-user');

  await page.click('nav >> text=Audit');
  await page.waitForURL(/\/admin\/audit/);
  const rows = await page.$$eval('table.audit tbody tr', (trs) => trs.map((tr) => (tr as HTMLElement).innerText.replace(/\s+/g, ' ')));
  const dana = rows.filter((r) => r.includes('dana@marquee.example'));
  assert.ok(dana.some((r) => /user\.create/.test(r) && /analyst/.test(r)), rows.join('\n'));
  assert.ok(dana.some((r) => /user\.role_change/.test(r) && /analyst → manager/.test(r)), rows.join('\n'));
  assert.ok(dana.some((r) => /user\.disable/.test(r) && /active → disabled/.test(r)), rows.join('\n'));
  assert.ok(dana.every((r) => r.includes('chief@marquee.example')), 'the actor is recorded');
  await screenshot(page, 'admin-05-audit');

  await page.selectOption('#f-action', 'user.role_change');
  await page.click('.filters button[type=submit]');
  await page.waitForURL(/action=user\.role_change/); // the filtered page, not the one being left
  const filtered = await page.$$eval('table.audit tbody tr', (trs) => trs.length);
  assert.is(filtered, 1);
  assert.match(page.url(), /action=user\.role_change/, 'filters live in the URL');

  // The disabled user cannot sign in.
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(`${server.url}/login`);
  await p2.fill('#f-email', 'dana@marquee.example');
  await p2.fill('#f-password', temp!);
  await p2.click('main button[type=submit]');
  assert.match(await p2.textContent('.form-error') ?? '', /disabled/);
  await other.close();

  assert.equal(unexpected(), [], 'no console errors');
});

test('signed out through the header form; the session cookie is HttpOnly', async () => {
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'mq_session')!;
  assert.ok(session.httpOnly);
  assert.is(session.sameSite, 'Lax');
  await page.click('header button:has-text("Sign out")');
  await page.waitForURL(/\/login$/);
  await page.goto(`${server.url}/admin/users`);
  assert.match(page.url(), /\/login\?next=%2Fadmin%2Fusers/);
  assert.equal(unexpected(), []);
});

test('a visitor signs up as a subscriber and manages the account, without JavaScript', async () => {
  const ctx = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 800 } });
  const p = await ctx.newPage();
  const errs = watchErrors(p);
  await p.goto(`${server.url}/signup`);
  await p.fill('#f-display_name', 'Sam Viewer');
  await p.fill('#f-email', 'sam@viewer.example');
  await p.fill('#f-password', 'sam likes films 2026');
  await p.fill('#f-confirm_password', 'sam likes films 2025');
  await p.click('main button[type=submit]');
  assert.match(await p.textContent('#f-confirm_password-error') ?? '', /differ/);
  assert.is(await p.inputValue('#f-email'), 'sam@viewer.example');
  await screenshot(p, 'account-01-signup-error');
  await p.fill('#f-password', 'sam likes films 2026');
  await p.fill('#f-confirm_password', 'sam likes films 2026');
  await p.click('main button[type=submit]');
  assert.match(await p.textContent('h1') ?? '', /Check your email/);
  // the confirmation link from the outbox (server/mail/outbox.ts), as the address's owner would open it
  await p.goto(`${server.url}${outbox.confirmPath('sam@viewer.example')}`);
  await p.click('main button[type=submit]');
  await p.goto(`${server.url}/account`);
  assert.match(await p.textContent('main') ?? '', /sam@viewer\.example/);
  assert.match(await p.textContent('main') ?? '', /subscriber/);
  await screenshot(p, 'account-02-profile');
  await p.click('text=Change password');
  await p.fill('#f-current_password', 'sam likes films 2026');
  await p.fill('#f-new_password', 'short');
  await p.fill('#f-confirm_password', 'short');
  await p.click('main button[type=submit]');
  assert.match(await p.textContent('#f-new_password-error') ?? '', /at least 10/);
  await screenshot(p, 'account-03-password-error');
  await p.goto(`${server.url}/admin/users`);
  assert.match(await p.textContent('h1') ?? '', /Forbidden/, 'a subscriber is refused the admin pages');
  await ctx.close();
  assert.equal(errs.filter((e) => !/status of 40[03] /.test(e)), []);
});

test.run();
