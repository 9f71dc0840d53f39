// Staff accounts for the live-traffic driver (README "Live traffic"): one analyst and one manager, created through the
// same operation as the admin pages and `npm run users -- create` (audited as created by the command line), with a
// random password only this run knows. Used by `npm run traffic -- --create-staff`, the load benchmark and tests.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../../server/db/index.ts';
import { createAccount } from '../../server/admin/user-ops.ts';
import type { StaffLogin } from './driver.ts';

export async function createStaffAccounts(db: Db, tag = `traffic-${Date.now().toString(36)}`): Promise<StaffLogin[]> {
  const out: StaffLogin[] = [];
  for (const role of ['analyst', 'manager'] as const) {
    const email = `${tag}-${role}@example.com`, password = `Staff-${randomBytes(12).toString('base64url')}`;
    await createAccount(db, { actorId: null, ip: null, requestId: `traffic-${randomUUID()}`, now: new Date() },
      { email, displayName: `Traffic ${role}`, role, password });
    out.push({ role, email, password });
  }
  return out;
}
