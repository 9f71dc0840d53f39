// Request ids: ours is always generated (server/app.ts, the X-Request-Id response header); a well-formed X-Request-Id
// sent by the client is kept beside it, in log lines and in audit_log.client_request_id.
import type { Context } from 'hono';
import type { Env } from './types.ts';

/** What a client's X-Request-Id must look like to be kept (beside our own id): 1-64 letters, digits, _ . - */
export const CLIENT_REQUEST_ID = /^[\w.-]{1,64}$/;

/** "<our id>", or "<our id> (client id <theirs>)" when the request came with a well-formed X-Request-Id: for log lines. */
export function requestLabel(c: Context<Env>): string {
  const theirs = c.get('clientRequestId');
  return theirs ? `${c.get('requestId')} (client id ${theirs})` : c.get('requestId');
}
