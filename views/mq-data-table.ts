// <mq-data-table>: the rows behind a chart as a real table — the text alternative of every figure.
import { LitElement, html, css } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { type Row, formatCell } from './report-data.ts';

@customElement('mq-data-table')
export class MqDataTable extends LitElement {
  static styles = css`
    :host { display: block; max-height: 320px; overflow: auto; margin-top: .5rem; border: 1px solid var(--border); border-radius: 4px; }
    table { border-collapse: collapse; width: 100%; font-size: .82rem; font-variant-numeric: tabular-nums; }
    caption { text-align: left; padding: .3rem .5rem; color: var(--fg-muted); }
    th, td { padding: .25rem .5rem; border-bottom: 1px solid var(--border); text-align: left; white-space: nowrap; }
    th { position: sticky; top: 0; background: var(--bg-raised); color: var(--fg-muted); font-weight: 600; }
    td.num { text-align: right; }
  `;

  @property({ attribute: false }) accessor rows: Row[] = [];
  @property() accessor caption = '';

  render() {
    const cols = [...new Set(this.rows.flatMap((r) => Object.keys(r)))];
    return html`<table>
      <caption>${this.caption} — ${this.rows.length} rows</caption>
      <thead><tr>${cols.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
      <tbody>${this.rows.map((r) => html`<tr>${cols.map((c) => html`<td class=${typeof r[c] === 'number' ? 'num' : ''}>${formatCell(r[c])}</td>`)}</tr>`)}</tbody>
    </table>`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-data-table': MqDataTable }
}
