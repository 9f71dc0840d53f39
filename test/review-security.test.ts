// Review findings: each test here failed before its fix (open redirects, error handling, role checks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { safeNext } from '../server/auth/forms.ts';

const t = useDatabase(test);
const app = () => createApp({ db: t.db, log: () => {} });
const form = (body: Record<string, string>) => ({
  method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(body).toString(),
});

// Dot segments normalize away: "/.//evil.example" is the protocol-relative "//evil.example" once resolved.
const DOT_SEGMENT_ESCAPES = ['/.//evil.example', '/..//evil.example/x', '/a/..//evil.example', '/%2e//evil.example', '/%2E%2E//evil.example'];

test('safeNext: dot segments cannot turn a local path into a protocol-relative URL', () => {
  for (const s of DOT_SEGMENT_ESCAPES) assert.is(safeNext(s), '/', s);
  assert.is(safeNext('/reports/mrr_trend?from=2026-01'), '/reports/mrr_trend?from=2026-01');
});

test('POST /login and POST /theme do not redirect off-site through dot segments in next', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  for (const next of DOT_SEGMENT_ESCAPES) {
    const r = await app().request('/login', form({ email: u.email, password: u.password, next }));
    assert.is(r.status, 303);
    assert.is(r.headers.get('location'), '/', `login next=${next}`);
    const th = await app().request('/theme', form({ theme: 'light', next }));
    assert.is(th.headers.get('location'), '/', `theme next=${next}`);
  }
  const cookie = await sessionCookie(t.db, u.id);
  const g = await authedRequest(app(), cookie, `/login?next=${encodeURIComponent('/.//evil.example')}`);
  assert.is(g.headers.get('location'), '/');
});

test.run();
