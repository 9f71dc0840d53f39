// Small view helpers shared by the admin pages: dates, money, badges, pagination links.
import { html, type Html } from '../html.ts';

export const badge = (kind: string, text: string) => html`<span class="badge ${kind}">${text}</span>`;
export const when = (d: Date | null | undefined) => d ? d.toISOString().slice(0, 16).replace('T', ' ') : '—';
export const day = (d: Date | null | undefined) => d ? d.toISOString().slice(0, 10) : '—';
export const money = (cents: number, currency = 'USD') =>
  new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(cents / 100);

/** ?a=1&b=2 built from the current filters (empty values dropped). */
export function queryString(params: Record<string, string | number | undefined>) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') qs.set(k, String(v));
  const s = qs.toString();
  return s ? `?${s}` : '';
}

export function pager(base: string, params: Record<string, string | undefined>, pageNo: number, total: number, size: number): Html {
  const pages = Math.max(1, Math.ceil(total / size));
  return html`<nav class="pager" aria-label="Pages">
    ${pageNo > 1 ? html`<a href="${base}${queryString({ ...params, page: pageNo - 1 })}" rel="prev">← Previous</a>` : html`<span class="muted">← Previous</span>`}
    <span>Page ${pageNo} of ${pages} · ${total.toLocaleString('en-US')} in all</span>
    ${pageNo < pages ? html`<a href="${base}${queryString({ ...params, page: pageNo + 1 })}" rel="next">Next →</a>` : html`<span class="muted">Next →</span>`}
  </nav>`;
}

export const pageParam = (v: string | undefined) => {
  const n = Number(v ?? 1);
  return Number.isInteger(n) && n >= 1 && n <= 100_000 ? n : 1;
};
