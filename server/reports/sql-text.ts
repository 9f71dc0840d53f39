// A small SQL lexer, just enough to find `:name` parameters, `mart_*` relations and the catalog's tables outside string
// literals, quoted identifiers, dollar quotes and comments, with their line numbers, and to replace parameters by $n.

export interface Token { kind: 'param' | 'mart' | 'catalog' | 'semicolon'; name: string; start: number; end: number; line: number }

/** The tables of the titles catalog: written only by a titles load (the ETL); every write to one moves
 *  catalog_state.generation (a trigger per table). */
export const CATALOG_TABLES = ['titles', 'genres', 'countries', 'people', 'title_genres', 'title_countries', 'title_cast', 'title_directors'];

const IDENT_START = /[A-Za-z_]/;
const IDENT_CHAR = /[A-Za-z0-9_$]/;

export function scanSql(text: string, firstLine = 1): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = firstLine;
  const n = text.length;
  const advanceTo = (j: number) => { for (; i < j && i < n; i++) if (text[i] === '\n') line++; };
  while (i < n) {
    const c = text[i];
    if (c === '\n') { line++; i++; continue; }
    if (c === '-' && text[i + 1] === '-') { const e = text.indexOf('\n', i); advanceTo(e < 0 ? n : e); continue; }
    if (c === '/' && text[i + 1] === '*') {
      let depth = 1; let j = i + 2;
      while (j < n && depth > 0) {
        if (text[j] === '/' && text[j + 1] === '*') { depth++; j += 2; } else if (text[j] === '*' && text[j + 1] === '/') { depth--; j += 2; } else j++;
      }
      advanceTo(j); continue;
    }
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(text[i - 1]) && (i < 2 || !IDENT_CHAR.test(text[i - 2]));
      let j = i + 1;
      while (j < n) {
        if (escapes && text[j] === '\\') { j += 2; continue; }
        if (text[j] === "'") { if (text[j + 1] === "'") { j += 2; continue; } break; }
        j++;
      }
      advanceTo(j + 1); continue;
    }
    if (c === '"') { const e = text.indexOf('"', i + 1); advanceTo(e < 0 ? n : e + 1); continue; }
    if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 66));
      if (m && !(i > 0 && IDENT_CHAR.test(text[i - 1]))) {
        const e = text.indexOf(m[0], i + m[0].length);
        advanceTo(e < 0 ? n : e + m[0].length); continue;
      }
      i++; continue;
    }
    if (c === ':') {
      if (text[i + 1] === ':') { i += 2; continue; }
      if (IDENT_START.test(text[i + 1] ?? '') && !(i > 0 && text[i - 1] === ':')) {
        let j = i + 1;
        while (j < n && /[A-Za-z0-9_]/.test(text[j])) j++;
        out.push({ kind: 'param', name: text.slice(i + 1, j), start: i, end: j, line });
        i = j; continue;
      }
      i++; continue;
    }
    if (c === ';') { out.push({ kind: 'semicolon', name: ';', start: i, end: i + 1, line }); i++; continue; }
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_CHAR.test(text[j])) j++;
      const word = text.slice(i, j);
      // mart_x as a relation: not a column (x.mart_y) unless qualified by the public schema
      const qualifier = /([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*$/.exec(text.slice(Math.max(0, i - 70), i));
      const relation = (!qualifier || qualifier[1].toLowerCase() === 'public') && text[j] !== '(';
      if (relation && /^mart_[a-z0-9_]+$/.test(word)) out.push({ kind: 'mart', name: word, start: i, end: j, line });
      // a catalog table's name, not an alias of the same spelling (`… AS countries`)
      else if (relation && CATALOG_TABLES.includes(word.toLowerCase()) && !/\bas\s*$/i.test(text.slice(Math.max(0, i - 10), i))) {
        out.push({ kind: 'catalog', name: word.toLowerCase(), start: i, end: j, line });
      }
      i = j; continue;
    }
    i++;
  }
  return out;
}

/** Replaces each :name by ($k::type), k numbered by first appearance; returns the text and the names in $ order. */
export function bindParams(text: string, tokens: Token[], typeOf: (name: string) => string): { text: string; order: string[] } {
  const order: string[] = [];
  let out = '';
  let pos = 0;
  for (const t of tokens) {
    if (t.kind !== 'param') continue;
    let k = order.indexOf(t.name);
    if (k < 0) { order.push(t.name); k = order.length - 1; }
    out += text.slice(pos, t.start) + `($${k + 1}::${typeOf(t.name)})`;
    pos = t.end;
  }
  return { text: out + text.slice(pos), order };
}
