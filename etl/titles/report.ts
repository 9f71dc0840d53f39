// Human output of a load: the summary, the rejects file, and the progress display (a bar on a TTY, lines otherwise).
import fs from 'node:fs';
import type { LoadSummary, LoadProgress } from './load.ts';
import type { DefectKind, Reject } from './csv.ts';

const n = (x: number) => x.toLocaleString('en-US');
const mb = (b: number) => b < 1e6 ? `${(b / 1e3).toFixed(1)} kB` : `${(b / 1e6).toFixed(b < 1e7 ? 1 : 0)} MB`;

export const DEFECT_LABELS: Record<DefectKind, string> = {
  bom: 'UTF-8 byte order mark removed',
  windows_1252_lines: 'lines in Windows-1252 converted to UTF-8',
  crlf_line_ends: 'CRLF line ends read',
  blank_lines: 'blank lines skipped',
  stray_quotes: 'bare quotes inside unquoted fields kept as text',
  extra_empty_columns: 'rows with an extra empty trailing column',
  whitespace_trimmed: 'fields with stray leading/trailing spaces trimmed',
  list_empty_items: 'lists with stray commas (empty items) cleaned',
  rating_holds_duration: 'durations found in the rating column moved to duration',
  type_spelling: 'types spelled another way ("movie", "TV show") normalised',
  duration_spelling: 'durations spelled another way ("90 mins", "1 Seasons") read',
};

export function formatSummary(s: LoadSummary, opts: { maxRejectLines?: number } = {}): string {
  const out: string[] = [];
  const verb = s.dryRun ? 'checked (dry run: nothing was written)' : 'loaded';
  out.push(`${s.source}: ${n(s.loaded)} titles ${verb} from ${n(s.rows)} rows in ${(s.timings.totalMs / 1000).toFixed(2)} s`);
  out.push(`  file:      ${s.container === 'plain' ? '' : s.container + ', '}${mb(s.bytes)}, ${s.encoding}, ${s.lineEnds} line ends, ` +
    `${s.header.mode === 'names' ? 'header by name' : s.header.mode === 'position' ? 'columns by position' : 'no header'}`);
  for (const note of s.header.notes) out.push(`             ${note}`);
  const formats = Object.entries(s.dateFormats).map(([k, v]) => `${k} (${n(v!)})`).join(', ');
  if (formats) out.push(`  dates:     ${formats}${s.dateOrder ? `; read as ${s.dateOrder.order === 'mdy' ? 'month/day' : 'day/month'}/year: ${s.dateOrder.reason}` : ''}`);
  out.push(`  titles:    ${n(s.inserted)} inserted, ${n(s.updated)} updated, ${n(s.unchanged)} unchanged, ${n(s.removed)} removed` +
    (s.replace ? '' : ' (no --replace)'));
  if (s.keptReferenced.length) {
    out.push(`  kept:      ${n(s.keptReferenced.length)} titles not in the file are kept because viewing history refers to them: ` +
      `${s.keptReferenced.slice(0, 20).join(', ')}${s.keptReferenced.length > 20 ? ', …' : ''}`);
  }
  if (s.keptRejected.length) {
    out.push(`  kept:      ${n(s.keptRejected.length)} titles whose rows were rejected stay as they were: ${s.keptRejected.slice(0, 20).join(', ')}`);
  }
  const defects = Object.entries(s.defects).filter(([, v]) => v);
  if (defects.length) {
    out.push('  fixed:');
    for (const [k, v] of defects) out.push(`    ${n(v!).padStart(7)}  ${DEFECT_LABELS[k as DefectKind] ?? k}`);
    if (s.repairedEncodingLines.length) out.push(`             (Windows-1252 lines: ${s.repairedEncodingLines.join(', ')}${(s.defects.windows_1252_lines ?? 0) > s.repairedEncodingLines.length ? ', …' : ''})`);
  }
  const missing = Object.entries(s.missing).filter(([, v]) => v).map(([k, v]) => `${k} ${n(v!)}`);
  if (missing.length) out.push(`  empty:     ${missing.join(', ')}`);
  if (s.rejects.length) {
    const max = opts.maxRejectLines ?? 20;
    out.push(`  rejected:  ${n(s.rejects.length)} rows`);
    for (const r of s.rejects.slice(0, max)) out.push(`    line ${r.line}${r.showId ? ` (${r.showId})` : ''}: ${r.reason}`);
    if (s.rejects.length > max) out.push(`    … ${n(s.rejects.length - max)} more (--rejects FILE writes them all)`);
  } else out.push('  rejected:  none');
  out.push(`  time:      read + COPY ${(s.timings.copyMs / 1000).toFixed(2)} s, normalize ${(s.timings.normalizeMs / 1000).toFixed(2)} s`);
  return out.join('\n');
}

function csvField(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function writeRejects(file: string, rejects: Reject[]) {
  const lines = ['line,show_id,reason,record', ...rejects.map((r) => [r.line, r.showId, r.reason, r.record].map(csvField).join(','))];
  try {
    fs.writeFileSync(file, lines.join('\n') + '\n');
  } catch (e: any) {
    throw Object.assign(new Error(`cannot write the rejects file ${file} (${e.code ?? 'error'}: ${e.message})`), { code: e.code });
  }
}

/** Progress on stderr: a redrawn bar on a terminal; a plain line every few seconds otherwise (logs, CI). */
export function progressReporter(stream: NodeJS.WriteStream & { isTTY?: boolean }) {
  let lastLine = 0;
  let normalizing = false;
  const tty = !!stream.isTTY;
  const render = (p: LoadProgress) => {
    const secs = p.elapsedMs / 1000;
    const rate = secs > 0 ? p.bytes / secs : 0;
    const frac = p.totalBytes ? Math.min(1, p.bytes / p.totalBytes) : undefined;
    const eta = frac !== undefined && rate > 0 ? (p.totalBytes! - p.bytes) / rate : undefined;
    const parts = [
      frac !== undefined ? `${mb(p.bytes)} / ${mb(p.totalBytes!)}` : mb(p.bytes),
      `${n(p.rows)} rows`, `${(rate / 1e6).toFixed(1)} MB/s`, eta !== undefined ? `ETA ${Math.ceil(eta)} s` : '',
    ].filter(Boolean).join(' · ');
    if (tty) {
      const width = 24;
      const bar = frac !== undefined ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ${(frac * 100).toFixed(0).padStart(3)}% ` : '';
      return `${bar}${parts}`;
    }
    return `reading: ${frac !== undefined ? `${(frac * 100).toFixed(0)}%, ` : ''}${parts}`;
  };
  return {
    update(p: LoadProgress) {
      if (p.phase === 'normalizing') {
        if (normalizing) return;
        normalizing = true;
        if (tty) stream.write(`\r\x1b[K${render(p)}\n`);
        stream.write(`normalizing ${n(p.rows)} rows into titles, genres, countries, people…\n`);
        return;
      }
      if (tty) { stream.write(`\r\x1b[K${render(p)}`); return; }
      if (p.elapsedMs - lastLine >= 5000) { lastLine = p.elapsedMs; stream.write(render(p) + '\n'); }
    },
    end() { if (tty && !normalizing) stream.write('\r\x1b[K'); },
  };
}
