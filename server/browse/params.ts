// /browse's URL is its state: ?q=&type=&genre=&country=&rating=&year=&page=. Each value is checked against the
// catalog (an unknown genre, country or rating is a 400 naming the field, as everywhere in the product); empty
// fields (the plain GET form sends them) and unknown keys are dropped by a redirect to the canonical URL, so a copied
// address always means the same view.
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { badRequest, notFound } from '../errors.ts';
import type { BrowseFilters, BrowseSnapshot } from './catalog.ts';

export const TYPES = { movie: 'Movie', show: 'TV Show' } as const;
export const KEYS = ['q', 'type', 'genre', 'country', 'rating', 'year', 'page'] as const;
export const MAX_QUERY = 100;
export const MAX_PAGE = 500;

export interface BrowseState {
  /** The values as given (trimmed), for the form and links. */
  values: Partial<Record<(typeof KEYS)[number], string>>;
  filters: BrowseFilters;
  page: number;
  /** The canonical query string ('' or '?…'). */
  canonical: string;
}

export function parseBrowse(search: URLSearchParams, snap: BrowseSnapshot): BrowseState {
  const fields: Record<string, string> = {};
  const values: BrowseState['values'] = {};
  for (const key of KEYS) {
    const all = search.getAll(key).map((v) => v.trim()).filter(Boolean);
    if (all.length > 1) fields[key] = 'given more than once';
    else if (all.length === 1) values[key] = all[0];
  }
  const filters: BrowseFilters = {};
  let page = 1;
  if (values.q !== undefined) {
    if ([...values.q].length > MAX_QUERY) fields.q = `at most ${MAX_QUERY} characters`;
    else filters.q = values.q.replace(/\s+/g, ' ');
  }
  if (values.type !== undefined) {
    const t = TYPES[values.type as keyof typeof TYPES];
    if (t) filters.type = t; else fields.type = `must be movie or show, got "${values.type}"`;
  }
  if (values.genre !== undefined) {
    const id = snap.genres.get(values.genre);
    if (id) filters.genreId = id; else fields.genre = `no genre "${values.genre}"`;
  }
  if (values.country !== undefined) {
    const id = snap.countries.get(values.country);
    if (id) filters.countryId = id; else fields.country = `no titles from "${values.country}"`;
  }
  if (values.rating !== undefined) {
    if (snap.ratings.includes(values.rating)) filters.rating = values.rating; else fields.rating = `no rating "${values.rating}"`;
  }
  if (values.year !== undefined) {
    const y = /^\d{4}$/.test(values.year) ? Number(values.year) : NaN;
    if (y >= 1900 && y <= 2100) filters.year = y; else fields.year = `must be a year 1900-2100, got "${values.year}"`;
  }
  if (values.page !== undefined) {
    const p = /^\d{1,4}$/.test(values.page) ? Number(values.page) : NaN;
    if (p >= 1 && p <= MAX_PAGE) page = p; else fields.page = `must be a whole number 1-${MAX_PAGE}, got "${values.page}"`;
  }
  if (Object.keys(fields).length) {
    throw badRequest(`Invalid ${Object.keys(fields).join(', ')}`, fields);
  }
  if (page === 1) delete values.page;
  return { values, filters, page, canonical: queryString(values) };
}

/** A query string for these values in the canonical key order ('' when none), with one key changed if asked. */
export function queryString(values: BrowseState['values'], change: Partial<BrowseState['values']> = {}): string {
  const out = new URLSearchParams();
  const merged = { ...values, ...change };
  for (const key of KEYS) {
    const v = merged[key];
    if (v !== undefined && v !== '' && !(key === 'page' && v === '1')) out.set(key, v);
  }
  const s = out.toString();
  return s ? `?${s}` : '';
}

/** A title id from the path: a positive integer, or a 404 (no id of any other shape exists). */
export function titleId(c: Context<Env>, name = 'id'): number {
  const raw = c.req.param(name) ?? '';
  const id = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id)) throw notFound(`No title ${raw}`);
  return id;
}

export const posterUrl = (id: number) => `/titles/${id}/poster.svg`;
