// <mq-kpi>: the single-value tile of a `@chart kpi` report: the value, and its change against the previous period.
import { LitElement, html, css, nothing } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { type Kpi, type Row, formatValue, formatDelta } from './report-data.ts';

@customElement('mq-kpi')
export class MqKpi extends LitElement {
  static styles = css`
    :host { display: block; }
    .value { font-size: clamp(1.6rem, 3vw, 2.2rem); font-weight: 700; color: var(--fg); line-height: 1.15;
      font-variant-numeric: tabular-nums; }
    .delta { font-size: .85rem; color: var(--fg-muted); margin-top: .2rem; }
    .up { color: var(--ok); }
    .down { color: var(--danger); }
  `;

  @property({ attribute: false }) accessor kpi: Kpi | undefined;
  @property({ attribute: false }) accessor row: Row | undefined;
  @property() accessor label = '';

  render() {
    if (!this.kpi) return nothing;
    const row = this.row ?? {};
    const value = row[this.kpi.value];
    const rawDelta = this.kpi.delta ? row[this.kpi.delta] : undefined;
    const delta = rawDelta === null || rawDelta === undefined || rawDelta === '' ? undefined : Number(rawDelta);
    const prev = typeof value === 'number' && delta !== undefined ? value - delta : undefined;
    const rel = prev && this.kpi.format !== 'percent' ? delta! / Math.abs(prev) : undefined;
    const text = formatValue(value, this.kpi.format);
    const deltaText = delta === undefined || !Number.isFinite(delta) ? '' : formatDelta(delta, this.kpi.format);
    const direction = delta === undefined || delta === 0 ? '' : delta > 0 ? 'up' : 'down';
    return html`<div class="value" aria-label="${this.label}: ${text}">${text}</div>
      ${deltaText ? html`<div class="delta">
        <span class=${direction}>${direction === 'up' ? '▲' : direction === 'down' ? '▼' : ''} ${deltaText}${rel !== undefined && Number.isFinite(rel)
          ? ` (${rel > 0 ? '+' : rel < 0 ? '−' : ''}${Math.abs(rel * 100).toFixed(1)} %)` : ''}</span> vs previous period</div>`
        : html`<div class="delta">no previous period to compare</div>`}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-kpi': MqKpi }
}
