// Server-rendered form pieces shared by the account and admin pages: a field with its error message beside it and
// the submitted value kept, and reading a form body as plain strings. No JavaScript needed anywhere.
import type { Context } from 'hono';
import { html, type Html } from '../html.ts';
import { badRequest } from '../errors.ts';

export type FieldErrors = Record<string, string>;

export interface FieldOptions {
  name: string;
  label: string;
  type?: 'text' | 'email' | 'password' | 'search' | 'number';
  value?: string | null;
  error?: string;
  required?: boolean;
  autocomplete?: string;
  hint?: string;
  maxlength?: number;
  autofocus?: boolean;
}

export function field(o: FieldOptions): Html {
  const id = `f-${o.name}`;
  const described = [o.error ? `${id}-error` : '', o.hint ? `${id}-hint` : ''].filter(Boolean).join(' ');
  return html`<div class="field${o.error ? ' has-error' : ''}">
  <label for="${id}">${o.label}</label>
  <input id="${id}" name="${o.name}" type="${o.type ?? 'text'}" value="${o.type === 'password' ? '' : o.value ?? ''}"
    ${o.required ? html`required` : ''} ${o.autocomplete ? html`autocomplete="${o.autocomplete}"` : ''}
    ${o.maxlength ? html`maxlength="${o.maxlength}"` : ''} ${o.autofocus ? html`autofocus` : ''}
    ${o.error ? html`aria-invalid="true"` : ''} ${described ? html`aria-describedby="${described}"` : ''}>
  ${o.error ? html`<span class="field-error" id="${id}-error">${o.error}</span>` : ''}
  ${o.hint ? html`<span class="field-hint muted" id="${id}-hint">${o.hint}</span>` : ''}
</div>`;
}

export function selectField(o: { name: string; label: string; options: readonly (string | [string, string])[];
  value?: string | null; error?: string }): Html {
  const id = `f-${o.name}`;
  return html`<div class="field${o.error ? ' has-error' : ''}">
  <label for="${id}">${o.label}</label>
  <select id="${id}" name="${o.name}" ${o.error ? html`aria-invalid="true" aria-describedby="${id}-error"` : ''}>
    ${o.options.map((opt) => {
      const [value, text] = typeof opt === 'string' ? [opt, opt] : opt;
      return html`<option value="${value}" ${value === o.value ? html`selected` : ''}>${text}</option>`;
    })}
  </select>
  ${o.error ? html`<span class="field-error" id="${id}-error">${o.error}</span>` : ''}
</div>`;
}

/** A banner above a form: the overall message of a failed submit (the details sit beside the fields). */
export function formError(message?: string): Html | string {
  return message ? html`<p class="form-error" role="alert">${message}</p>` : '';
}

export function notice(message?: string): Html | string {
  return message ? html`<p class="notice" role="status">${message}</p>` : '';
}

/**
 * The form body as strings (file parts are skipped). Non-form bodies give {}.
 * Every form field in the product is single-valued, so a key sent twice is a 400 naming it: otherwise which copy
 * counts would be the parser's choice (it was the last one, and `role=subscriber&role=admin` checked as one value and
 * stored another). A body that cannot be parsed, or a field holding a NUL character (PostgreSQL text cannot store
 * one), is a 400 too.
 */
export async function formBody(c: Context<any>): Promise<Record<string, string>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) return {};
  let body: Awaited<ReturnType<typeof c.req.parseBody>>;
  try {
    body = await c.req.parseBody({ all: true });
  } catch {
    throw badRequest('The form could not be read: send it as application/x-www-form-urlencoded or well-formed multipart/form-data');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    const name = k.replace(/\u0000/g, '') || '(unnamed field)';
    if (Array.isArray(v)) throw badRequest(`The field ${name} was sent more than once`, { [name]: 'send this field once' });
    if (typeof v !== 'string') continue;
    if (k.includes('\u0000') || v.includes('\u0000')) {
      throw badRequest(`The field ${name} contains a NUL character`, { [name]: 'must not contain a NUL character' });
    }
    out[k] = v;
  }
  return out;
}

/** A local path to send the user back to after signing in: same-origin, absolute path, no scheme tricks. */
export function safeNext(next: string | undefined | null, fallback = '/'): string {
  if (!next || next.length > 2000 || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return fallback;
  if (/[\u0000-\u001f\\]/.test(next)) return fallback;
  try {
    const u = new URL(next, 'http://marquee.invalid');
    if (u.origin !== 'http://marquee.invalid') return fallback;
    // Dot segments resolve away ("/.//evil.example" -> "//evil.example"): the result must still be one local path.
    if (u.pathname.startsWith('//') || u.pathname.startsWith('/\\')) return fallback;
    if (u.pathname === '/login' || u.pathname === '/logout') return fallback;
    return u.pathname + u.search + u.hash;
  } catch {
    return fallback;
  }
}
