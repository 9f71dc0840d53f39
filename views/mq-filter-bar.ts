// <mq-filter-bar filters='[…]'>: enhances the server-rendered GET form of a dashboard (which works without
// JavaScript) into live filters. A change becomes the canonical query string (defaults omitted), pushed with the
// history API, and announced with an `mq-filters-change` event (bubbles, composed) that the dashboard turns into
// new tile params. Back/forward restore the form and the tiles from the URL.
import { LitElement, html, css } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { type Filter, type FilterState, type Period, PERIODS, parseState, toQuery, resolvePeriod, FilterError } from './filters.ts';

export interface FiltersChangeDetail { state: FilterState; query: string }

@customElement('mq-filter-bar')
export class MqFilterBar extends LitElement {
  static styles = css`
    :host { display: block; margin-bottom: 1rem; }
    .error { color: var(--danger); font-size: .85rem; margin: .25rem 0 0; }
  `;

  @property({ type: Array }) accessor filters: Filter[] = [];
  private error = '';

  private get form(): HTMLFormElement | null { return this.querySelector('form'); }

  /** What the bar listens to while connected (added on connect, removed on disconnect). */
  private get listeners(): [EventTarget, string, (e: Event) => void][] {
    return [[this, 'change', this.onChange], [this, 'submit', this.onSubmit], [this, 'click', this.onClick], [window, 'popstate', this.onPopState]];
  }

  connectedCallback() {
    super.connectedCallback();
    for (const [target, type, fn] of this.listeners) target.addEventListener(type, fn);
    // The bar is live now: the Apply button is only needed without JavaScript.
    this.form?.classList.add('live');
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn);
  }

  private periodFilter() { return this.filters.find((f) => f.type === 'period'); }

  /** The state the form shows. `mode` says whether the user just chose months or a relative period. */
  private readForm(mode: 'months' | Period | 'keep'): FilterState {
    const form = this.form!;
    const data = new FormData(form);
    const q = new URLSearchParams();
    const current = this.currentState();
    for (const f of this.filters) {
      if (f.type === 'period') {
        if (mode === 'months') {
          for (const k of ['from', 'to'] as const) { const v = data.get(k); if (v) q.set(k, String(v)); }
        } else if (mode === 'keep') {
          if (current.from) q.set('from', current.from);
          if (current.to) q.set('to', current.to);
          if (current.period) q.set('period', current.period);
        } else q.set('period', mode);
      } else {
        for (const v of data.getAll(f.name)) if (v) q.append(f.name, String(v));
      }
    }
    return parseState(q, this.filters);
  }

  private currentState(): FilterState {
    try { return parseState(new URLSearchParams(location.search), this.filters); } catch { return { choices: {} }; }
  }

  private onChange = (e: Event) => {
    const target = e.target as HTMLInputElement;
    if (!this.form?.contains(target)) return;
    this.apply(target.name === 'from' || target.name === 'to' ? 'months' : 'keep');
  };

  private onSubmit = (e: Event) => {
    e.preventDefault();
    this.apply('months');
  };

  private onClick = (e: Event) => {
    const link = (e.target as Element).closest?.('a[data-period]') as HTMLAnchorElement | null;
    if (!link || !this.contains(link)) return;
    e.preventDefault();
    this.apply(link.dataset.period as Period);
  };

  private onPopState = () => {
    const state = this.currentState();
    this.syncForm(state);
    this.announce(state);
  };

  private apply(mode: 'months' | Period | 'keep') {
    let state: FilterState;
    try {
      // Months left empty fall back to the relative period shown.
      state = this.readForm(mode);
      if (mode === 'months' && !state.from && !state.to) state = this.readForm('keep');
      this.error = '';
    } catch (e) {
      this.error = e instanceof FilterError ? e.message : String(e);
      this.requestUpdate();
      return;
    }
    this.requestUpdate();
    const query = toQuery(state, this.filters);
    if (query !== location.search.replace(/^\?/, '')) {
      history.pushState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
    }
    this.syncForm(state);
    this.announce(state);
  }

  /** Puts a state into the form controls (after back/forward, or a relative period chosen). */
  private syncForm(state: FilterState) {
    const form = this.form;
    if (!form) return;
    const period = this.periodFilter();
    if (period && period.type === 'period') {
      const r = resolvePeriod(state, period, new Date());
      const fixed = !!(state.from || state.to);
      for (const k of ['from', 'to'] as const) {
        const input = form.elements.namedItem(k) as HTMLInputElement | null;
        if (input) input.value = r[k];
      }
      const hidden = form.querySelector<HTMLInputElement>('input[type=hidden][name=period]');
      if (hidden) hidden.value = state.period ?? period.default;
      const active = fixed ? '' : state.period ?? period.default;
      for (const a of this.querySelectorAll<HTMLAnchorElement>('a[data-period]')) {
        if (a.dataset.period === active) a.setAttribute('aria-current', 'true'); else a.removeAttribute('aria-current');
        const q = toQuery({ ...state, from: undefined, to: undefined, period: a.dataset.period as Period }, this.filters);
        a.href = `${location.pathname}${q ? `?${q}` : ''}`;
      }
      const out = this.querySelector('.resolved');
      if (out) out.textContent = `${fixed ? 'Custom range' : PERIODS[active as Period]}: ${r.from} to ${r.to}`;
    }
    for (const f of this.filters) {
      if (f.type === 'period') continue;
      const chosen = new Set(state.choices[f.name] ?? []);
      for (const el of form.querySelectorAll<HTMLInputElement | HTMLSelectElement>(`[name="${f.name}"]`)) {
        if (el instanceof HTMLInputElement) el.checked = chosen.has(el.value);
        else if (el.multiple) for (const o of el.options) o.selected = chosen.has(o.value);
        else el.value = [...chosen][0] ?? f.default ?? '';
      }
    }
    const reset = this.querySelector<HTMLAnchorElement>('a.reset');
    if (reset) reset.hidden = toQuery(state, this.filters) === '';
  }

  private announce(state: FilterState) {
    this.dispatchEvent(new CustomEvent<FiltersChangeDetail>('mq-filters-change', {
      bubbles: true, composed: true, detail: { state, query: toQuery(state, this.filters) },
    }));
  }

  render() {
    return html`<slot></slot>${this.error ? html`<p class="error" role="alert">${this.error}</p>` : ''}`;
  }
}

declare global {
  interface HTMLElementTagNameMap { 'mq-filter-bar': MqFilterBar }
}
