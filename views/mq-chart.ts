// <mq-chart report="mrr_trend" params="from=2026-01&to=2026-06">: one report as an accessible figure.
// Fetches /api/reports/<id>?<params> (aborted when params change or the tile leaves the page), renders the Vega-Lite
// spec with vega-embed (finalized on disconnect and before every re-render) or a KPI tile for `@chart kpi` reports,
// and offers "view as table", CSV (the API's .csv), PNG and SVG. States: loading, ready, error — each says what.
import { LitElement, html, css, nothing, type PropertyValues } from 'lit';
import { customElement, property, state, query } from 'lit/decorators.js';
import { Task, TaskStatus } from '@lit/task';
import { loadVega, } from './vega.ts';
import type { Result } from './vega-render.ts';
import { vegaConfig, onThemeChange } from './theme.ts';
import { type ReportResponse, rowsOf, kpiOf, describe, formatTime, pageRows } from './report-data.ts';
import { exportFileBase } from './export-name.ts';
import './mq-kpi.ts';
import './mq-data-table.ts';

export class ReportFetchError extends Error {}

async function fetchReport(report: string, params: string, src: string, signal: AbortSignal): Promise<ReportResponse> {
  const base = src || `/api/reports/${encodeURIComponent(report)}`;
  const url = `${base}${params ? `${base.includes('?') ? '&' : '?'}${params}` : ''}`;
  let res: Response;
  try {
    res = await fetch(url, { signal, credentials: 'same-origin', headers: { accept: 'application/json' } });
  } catch (e: any) {
    if (e?.name === 'AbortError') throw e;
    throw new ReportFetchError(`Could not reach the server for report "${report}"`);
  }
  if (!res.ok) {
    let message = res.statusText;
    try {
      const body = await res.json();
      message = body?.error?.message ?? message;
      const fields = body?.error?.fields;
      if (fields) message += ': ' + Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('; ');
    } catch { /* not JSON: keep the status text */ }
    throw new ReportFetchError(`Report "${report}" failed (${res.status}): ${message}`);
  }
  return res.json();
}

let ids = 0;

@customElement('mq-chart')
export class MqChart extends LitElement {
  static styles = css`
    :host { display: block; min-width: 0; }
    figure { box-sizing: border-box; margin: 0; height: 100%; display: flex; flex-direction: column; gap: .5rem; background: var(--bg-raised);
      border: 1px solid var(--border); border-radius: 8px; padding: .85rem 1rem; }
    figcaption { display: flex; flex-wrap: wrap; align-items: baseline; gap: .25rem .75rem; }
    .title { font-weight: 600; color: var(--fg); font-size: .98rem; margin: 0; }
    .meta { color: var(--fg-muted); font-size: .78rem; margin-left: auto; }
    .capped { color: var(--warn); }
    .stale { color: var(--bg); background: var(--warn); border-radius: 3px; padding: 0 .35rem; font-weight: 600; }
    .body { position: relative; min-height: var(--mq-chart-min-height, 120px); flex: 1; }
    .vega { width: 100%; outline-offset: 3px; border-radius: 4px; }
    .vega:focus-visible { outline: 2px solid var(--link); }
    .loading { position: absolute; inset: 0; display: grid; place-items: center; color: var(--fg-muted); font-size: .85rem;
      background: color-mix(in srgb, var(--bg-raised) 70%, transparent); }
    .error { color: var(--danger); font-size: .88rem; margin: .5rem 0; }
    .actions { display: flex; flex-wrap: wrap; gap: .4rem; font-size: .8rem; }
    .actions button, .actions a { background: var(--bg-input); color: var(--fg); border: 1px solid var(--border);
      border-radius: 4px; padding: .2rem .55rem; font: inherit; cursor: pointer; text-decoration: none; }
    .actions button:hover, .actions a:hover { border-color: var(--fg-muted); }
    .actions button:focus-visible, .actions a:focus-visible { outline: 2px solid var(--link); outline-offset: 2px; }
    .actions button[aria-pressed="true"] { background: var(--fg); color: var(--bg); }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    .empty { color: var(--fg-muted); font-size: .88rem; }
    :host([kind="kpi"]) .body { min-height: 0; }
    :host([kind="kpi"]) figure { gap: .35rem; }
  `;

  /** Report id (file name in sql/reports). */
  @property({ reflect: true }) accessor report = '';
  /** Query string of the report parameters, e.g. "from=2026-01&plan=premium". */
  @property({ reflect: true }) accessor params = '';
  /** Where the report's answer comes from instead of /api/reports/<id> (an embed's data URL); no CSV link then. */
  @property() accessor src = '';
  /** Chart height in px (the width follows the tile). */
  @property({ type: Number }) accessor height = 240;
  /** "loading" | "ready" | "error": reflected so pages, tests and benchmarks can wait for it. */
  @property({ reflect: true }) accessor state = 'loading';
  /** "kpi" once the report turned out to be a single-value KPI (reflected for styling). */
  @property({ reflect: true }) accessor kind = '';
  /** Which direction of a KPI change is good: "up" (default) or "down" (churn, revenue at risk). */
  @property() accessor better: 'up' | 'down' = 'up';

  @state() accessor showTable = false;
  @state() accessor renderError = '';
  @query('.vega') accessor vegaEl!: HTMLDivElement | null;

  private embedded?: Result;
  /** the data a drawing was started for, and the data whose drawing finished */
  private renderedFor?: ReportResponse;
  private drawnFor?: ReportResponse;
  private uid = `mq-chart-${++ids}`;
  private stopTheme?: () => void;

  private task = new Task(this, {
    task: async ([report, params, src], { signal }) => {
      if (!report) throw new ReportFetchError('No report given (the report attribute is empty)');
      // Start loading vega-embed alongside the data, not after it (KPI tiles never wait for it).
      void loadVega().catch(() => undefined);
      return fetchReport(report, params, src, signal);
    },
    args: () => [this.report, this.params, this.src] as const,
  });

  connectedCallback() {
    super.connectedCallback();
    this.stopTheme = onThemeChange(() => { this.renderedFor = this.drawnFor = undefined; this.requestUpdate(); });
    // Back on the page (moved in the DOM): draw again, the previous view was finalized.
    if (this.hasUpdated) { this.renderedFor = this.drawnFor = undefined; this.requestUpdate(); }
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    this.stopTheme?.();
    this.finalize();
  }

  private finalize() {
    this.embedded?.finalize();
    this.embedded = undefined;
  }

  private get data(): ReportResponse | undefined { return this.task.value; }

  protected updated(changed: PropertyValues) {
    super.updated(changed);
    const status = this.task.status;
    // "ready" only once the drawing of the current data is finished, not while it is in progress.
    const next = status === TaskStatus.ERROR ? 'error' : status === TaskStatus.COMPLETE && this.drawnFor === this.data && !this.renderError ? 'ready' : 'loading';
    if (status === TaskStatus.COMPLETE && this.data && this.renderedFor !== this.data) void this.draw(this.data);
    else if (status === TaskStatus.COMPLETE && this.renderError) this.setState('error');
    else this.setState(next);
  }

  private setState(s: string) {
    if (this.state === s) return;
    this.state = s;
    if (s === 'ready' || s === 'error') {
      this.dispatchEvent(new CustomEvent(`mq-chart-${s === 'ready' ? 'rendered' : 'error'}`, {
        bubbles: true, composed: true, detail: { report: this.report, params: this.params },
      }));
    }
  }

  private async draw(data: ReportResponse) {
    this.renderedFor = data;
    this.renderError = '';
    this.kind = kpiOf(data.spec) ? 'kpi' : 'chart';
    if (this.kind === 'kpi') { this.finalize(); this.drawnFor = data; this.setState('ready'); return; }
    await this.updateComplete;
    const el = this.vegaEl;
    if (!el || this.renderedFor !== data) return;
    try {
      const { render } = await loadVega();
      if (this.renderedFor !== data || !this.isConnected) return;
      this.finalize();
      const spec = { ...data.spec };
      const composite = ['facet', 'hconcat', 'vconcat', 'concat', 'repeat'].some((k) => k in spec);
      if (!composite && spec.width === undefined) spec.width = 'container';
      // One height per tile (the dashboard file may set it), so tiles in a grid row line up — except a spec that
      // asks for a height per bar ({"step": n}): a ranked list of 20-40 names squeezed into 240 px overlaps.
      const stepHeight = typeof spec.height === 'object' && spec.height !== null && 'step' in spec.height;
      if (!composite && !stepHeight) spec.height = this.height;
      spec.autosize ??= { type: stepHeight ? 'fit-x' : 'fit', contains: 'padding' };
      delete spec.title; // the figcaption carries the title
      // Vega names its container from the spec's description ("Vega visualization" when none): make that the title.
      spec.description = data.title;
      const result = await render(el, spec, vegaConfig());
      if (this.renderedFor !== data || !this.isConnected) { result.finalize(); return; }
      this.embedded = result;
      // The container is the accessible image (role=img, label, description, focusable); the marks inside would
      // only repeat it, point by point, to a screen reader. Vega's view has just made the container a
      // "graphics-document" labelled by the description: give it back its role and the report's title.
      this.labelImage(el, data.title);
      const drawn = el.querySelector('svg, canvas');
      drawn?.setAttribute('aria-hidden', 'true');
      this.drawnFor = data;
      this.setState('ready');
    } catch (e: any) {
      this.renderError = `Could not draw the chart for "${data.id}": ${e?.message ?? e}`;
      this.setState('error');
    }
  }

  private labelImage(el: HTMLElement, title: string) {
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', title);
    el.removeAttribute('aria-roledescription');
  }

  private csvUrl(): string {
    return `/api/reports/${encodeURIComponent(this.report)}.csv${this.params ? `?${this.params}` : ''}`;
  }

  private fileBase(): string {
    return exportFileBase(this.report, this.params);
  }

  private async exportImage(type: 'png' | 'svg') {
    if (!this.embedded) return;
    try {
      // The chart is drawn on a transparent background; an exported file gets the tile's, so light text stays legible.
      const view = this.embedded.view;
      const background = view.background();
      view.background(getComputedStyle(this).getPropertyValue('--bg-raised').trim() || '#ffffff');
      let url: string;
      try {
        url = await view.toImageURL(type, type === 'png' ? 2 : 1);
      } finally {
        view.background(background);
      }
      const a = document.createElement('a');
      a.href = url;
      a.download = `${this.fileBase()}.${type}`;
      a.rel = 'noopener';
      this.renderRoot.appendChild(a);
      a.click();
      a.remove();
      if (url.startsWith('blob:')) setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e: any) {
      this.renderError = `Could not export ${type.toUpperCase()} of "${this.report}": ${e?.message ?? e}`;
    }
  }

  private meta(d: ReportResponse) {
    const asOf = d.asOf ? html`data as of <time datetime=${d.asOf}>${formatTime(d.asOf)}</time>` : html`live data`;
    return html`<span class="meta" title=${d.nextRefresh ? `next refresh ${formatTime(d.nextRefresh)}` : ''}>
      ${asOf}${d.page !== undefined ? html` · ${pageRows(d.page, d.rowCap ?? 0, d.rowCount)} (page ${d.page})` : d.truncated ? html` · <span class="capped">first ${d.rowCap ?? d.rowCount} rows only</span>` : nothing}${d.stale ? html` <span class="stale" title="The last scheduled refresh failed; showing the last good data">stale</span>` : nothing}
    </span>`;
  }

  render() {
    const d = this.data;
    const status = this.task.status;
    const kpi = d && kpiOf(d.spec);
    const rows = d ? rowsOf(d.spec) : [];
    const title = d?.title ?? this.report;
    const pending = status === TaskStatus.PENDING || status === TaskStatus.INITIAL;
    const fetchError = status === TaskStatus.ERROR ? (this.task.error as Error)?.message ?? String(this.task.error) : '';
    const summary = d ? describe(d.spec, rows, title) : '';
    return html`<figure aria-labelledby="${this.uid}-cap" aria-busy=${pending ? 'true' : 'false'}>
      <figcaption id="${this.uid}-cap">
        <h2 class="title">${title}</h2>
        ${d ? this.meta(d) : nothing}
      </figcaption>
      <div class="body">
        ${kpi && d ? html`<mq-kpi .kpi=${kpi} .row=${rows[0]} label=${title} better=${this.better}></mq-kpi>`
          : html`<div class="vega" role="img" tabindex="0" aria-label=${title} aria-describedby="${this.uid}-desc"
              ?hidden=${!d || !!fetchError}></div>
            ${d && !rows.length ? html`<p class="empty">No data for these filters.</p>` : nothing}`}
        <p class="sr-only" id="${this.uid}-desc">${summary}</p>
        ${pending ? html`<div class="loading" role="status">Loading ${d ? 'new data' : 'report'}…</div>` : nothing}
      </div>
      ${fetchError ? html`<p class="error" role="alert">${fetchError}</p>` : nothing}
      ${this.renderError ? html`<p class="error" role="alert">${this.renderError}</p>` : nothing}
      ${d && !fetchError ? html`<div class="actions">
        <button type="button" aria-pressed=${this.showTable ? 'true' : 'false'} aria-controls="${this.uid}-table"
          @click=${() => (this.showTable = !this.showTable)}>View as table</button>
        ${this.src ? nothing : html`<a href=${this.csvUrl()} download="${this.fileBase()}.csv">CSV</a>`}
        ${kpi ? nothing : html`<button type="button" ?disabled=${!this.embedded} @click=${() => this.exportImage('png')}>PNG</button>
        <button type="button" ?disabled=${!this.embedded} @click=${() => this.exportImage('svg')}>SVG</button>`}
      </div>
      <div id="${this.uid}-table">${this.showTable ? html`<mq-data-table .rows=${rows} caption=${title}></mq-data-table>` : nothing}</div>`
        : nothing}
    </figure>`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-chart': MqChart }
}
