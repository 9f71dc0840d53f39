// <mq-dashboard columns="4" filters='[…]'>: the responsive tile grid (1–4 columns: fewer on narrow screens) and the
// glue between the filter bar and the tiles. Tiles are server-rendered children carrying `accepts` (the report's
// parameters) and `fixed` (the tile's own params); on a filter change only tiles whose query changes refetch.
import { LitElement, html, css } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { type Filter, type FixedParams, tileQuery } from './filters.ts';
import type { FiltersChangeDetail } from './mq-filter-bar.ts';

function fixedOf(el: Element): FixedParams {
  const fixed: FixedParams = {};
  for (const [k, v] of new URLSearchParams(el.getAttribute('fixed') ?? '')) {
    const prev = fixed[k];
    fixed[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  return fixed;
}

@customElement('mq-dashboard')
export class MqDashboard extends LitElement {
  static styles = css`
    :host { display: block; --cols: 4; }
    .grid { display: grid; gap: 1rem; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); align-items: stretch; }
    :host([columns="1"]) { --cols: 1; }
    :host([columns="2"]) { --cols: 2; }
    :host([columns="3"]) { --cols: 3; }
    ::slotted(.size-2) { grid-column: span 2; }
    ::slotted(.size-3) { grid-column: span 3; }
    ::slotted(.size-4) { grid-column: 1 / -1; }
    @media (max-width: 1100px) {
      :host { --cols: 2; }
      :host([columns="1"]) { --cols: 1; }
      ::slotted(.size-3), ::slotted(.size-4) { grid-column: 1 / -1; }
    }
    @media (max-width: 640px) {
      :host, :host([columns]) { --cols: 1; }
      ::slotted(*) { grid-column: 1 / -1 !important; }
    }
  `;

  @property({ type: Number, reflect: true }) accessor columns = 4;
  @property({ type: Array }) accessor filters: Filter[] = [];

  connectedCallback() {
    super.connectedCallback();
    this.addEventListener('mq-filters-change', this.onFilters as EventListener);
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    this.removeEventListener('mq-filters-change', this.onFilters as EventListener);
  }

  private onFilters = (e: CustomEvent<FiltersChangeDetail>) => {
    const now = new Date();
    for (const tile of this.querySelectorAll('[report][accepts]')) {
      const accepts = (tile.getAttribute('accepts') ?? '').split(/\s+/).filter(Boolean);
      const next = tileQuery(accepts, fixedOf(tile), e.detail.state, this.filters, now);
      if (tile.getAttribute('params') !== next) tile.setAttribute('params', next);
    }
  };

  render() {
    return html`<slot name="filters"></slot><div class="grid"><slot></slot></div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-dashboard': MqDashboard }
}
