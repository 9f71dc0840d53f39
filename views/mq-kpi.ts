// <mq-kpi>: the single-value tile of a `@chart kpi` report: the value of a month, and its change against the month
// before (the report's delta field, a fraction; its `previous` column when present).
import { LitElement, html, css, nothing } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { type Kpi, type Row, formatValue, formatChange, kpiPeriod } from './report-data.ts';

@customElement('mq-kpi')
export class MqKpi extends LitElement {
  static styles = css`
    :host { display: block; padding: .25rem 0; }
    .value { font-size: clamp(1.6rem, 3vw, 2.2rem); font-weight: 700; color: var(--fg); line-height: 1.15;
      font-variant-numeric: tabular-nums; }
    .delta { font-size: .85rem; color: var(--fg-muted); margin-top: .3rem; }
    .period { font-size: .8rem; color: var(--fg-muted); margin-top: .15rem; }
    .good { color: var(--ok); }
    .bad { color: var(--danger); }
  `;

  @property({ attribute: false }) accessor kpi: Kpi | undefined;
  @property({ attribute: false }) accessor row: Row | undefined;
  @property() accessor label = '';
  /** The good direction of change: "up" (revenue, subscribers) or "down" (churn, revenue at risk). */
  @property() accessor better: 'up' | 'down' = 'up';

  private period(month: unknown) {
    const text = kpiPeriod(month);
    return text ? html`<div class="period">${text}</div>` : nothing;
  }

  render() {
    if (!this.kpi) return nothing;
    const row = this.row ?? {};
    const text = formatValue(row[this.kpi.value], this.kpi.format);
    const raw = this.kpi.delta ? row[this.kpi.delta] : undefined;
    const delta = raw === null || raw === undefined || raw === '' ? undefined : Number(raw);
    const direction = delta === undefined || !Number.isFinite(delta) || delta === 0 ? '' : delta > 0 ? 'up' : 'down';
    // Arrow and words carry the direction; colour only repeats it (colour-blind safe).
    return html`<div class="value">${text}</div>${this.period(row.month)}
      ${this.kpi.delta ? html`<div class="delta">${delta === undefined || !Number.isFinite(delta)
        ? 'no previous month to compare'
        : html`<span class=${!direction ? '' : (direction === this.better ? 'good' : 'bad')}>${direction === 'up' ? '▲ ' : direction === 'down' ? '▼ ' : ''}${formatChange(delta)}</span>
          vs previous month${typeof row.previous === 'number' ? ` (${formatValue(row.previous, this.kpi.format)})` : ''}`}</div>` : nothing}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-kpi': MqKpi }
}
