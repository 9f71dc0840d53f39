// Outgoing mail, for now as files: one RFC 5322-style .eml file per message in the outbox directory (mode 0600, the
// directory 0700), written whole before it appears (temp name, then rename). An SMTP relay can pick them up later;
// a developer opens the newest file to follow a sign-up link (README, "Accounts, roles and sessions").
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface Mail { to: string; subject: string; text: string }

/** The sender of every message the product writes or sends. */
export const FROM = 'Marquee <no-reply@marquee.invalid>';

/** Writes one whole message (RFC 5322 text, e.g. composed by nodemailer) as a new .eml file; returns its file. */
export async function writeMessage(dir: string, message: string | Buffer, now: Date): Promise<string> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `${now.toISOString().replace(/[:.]/g, '-')}-${randomBytes(6).toString('hex')}.eml`;
  const file = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.tmp`);
  await fs.writeFile(tmp, message, { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, file);
  return file;
}

/** Writes one message; returns its file. `to` must be a checked address (no whitespace: no header injection). */
export async function sendMail(dir: string, mail: Mail, now: Date): Promise<string> {
  if (/[\s<>]/.test(mail.to) || /[\r\n]/.test(mail.subject)) throw new Error('sendMail: refusing a header with line breaks');
  const id = `${now.getTime().toString(36)}-${randomBytes(6).toString('hex')}`;
  const body = [
    `From: ${FROM}`,
    `To: <${mail.to}>`,
    `Subject: ${mail.subject}`,
    `Date: ${now.toUTCString()}`,
    `Message-ID: <${id}@marquee.invalid>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...mail.text.split('\n'),
    '',
  ].join('\r\n');
  return writeMessage(dir, body, now);
}
