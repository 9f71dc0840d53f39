// Where the bytes come from: a path, a .gz, Kaggle's .zip download, or stdin ('-'). The container is recognised
// by its magic bytes, not the file name (a gzip saved as .csv loads too). Everything is a stream: nothing is buffered.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PassThrough, Readable, Transform } from 'node:stream';
import yauzl from 'yauzl';
import { TitlesInputError } from './errors.ts';

export interface OpenedSource {
  /** Name used in messages: the path as given, "stdin", or "archive.zip:netflix_titles.csv". */
  name: string;
  container: 'plain' | 'gzip' | 'zip';
  /** Uncompressed CSV bytes. */
  stream: Readable;
  /** Progress: bytes consumed of `total` (compressed bytes for .gz, since its uncompressed size is unknown). */
  consumed(): number;
  total?: number;
}

export type SourceInput = string | { name: string; stream: Readable };

const GZIP = [0x1f, 0x8b];
const ZIP = [0x50, 0x4b];

function startsWith(buf: Buffer, magic: number[]) {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads the first bytes of a stream without consuming them: they are pushed back with unshift, and the stream to read
 * on is returned — a new one holding them when the input ended first (a stream cannot take unshift after its end).
 */
function peek(stream: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    const done = (err?: Error | null, ended = false) => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', done);
      if (err) return reject(err);
      const head = Buffer.concat(parts);
      if (ended) return resolve({ head, stream: Readable.from(head.length ? [head] : []) });
      if (head.length) stream.unshift(head);
      resolve({ head, stream });
    };
    const onEnd = () => done(null, true);
    const onReadable = () => {
      let chunk: Buffer | null;
      while (have < n && (chunk = stream.read()) !== null) { parts.push(chunk); have += chunk.length; }
      if (have >= n) done();
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', done);
  });
}

/** Counts the bytes that pass (progress), without switching the source into flowing mode early. */
function counting(total?: number) {
  let bytes = 0;
  return {
    tap(src: Readable): Readable {
      const t = new Transform({
        highWaterMark: 1 << 16,
        transform(chunk: Buffer, _enc, cb) { bytes += chunk.length; cb(null, chunk); },
      });
      src.on('error', (e) => t.destroy(e));
      return src.pipe(t);
    },
    consumed: () => bytes,
    total,
  };
}

function gunzip(name: string, src: Readable): Readable {
  const z = zlib.createGunzip({ chunkSize: 1 << 16 });
  src.on('error', (e) => z.destroy(e));
  src.pipe(z);
  return mapErrors(z, (e) => new TitlesInputError(name, `not valid gzip data (${e.message})`));
}

function mapErrors(s: Readable, map: (e: Error & { code?: string }) => Error): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 16 });
  s.on('error', (e) => out.destroy(e instanceof TitlesInputError ? e : map(e)));
  s.pipe(out);
  return out;
}

function openZip(file: string): Promise<{ entry: string; stream: Readable; size: number; consumed: () => number }> {
  const name = file;
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return reject(new TitlesInputError(name, `not a readable zip archive (${err?.message ?? 'unknown error'})`));
      const csvs: yauzl.Entry[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        const base = path.posix.basename(e.fileName);
        if (!e.fileName.endsWith('/') && !e.fileName.startsWith('__MACOSX/') && !base.startsWith('.') && /\.csv$/i.test(base)) csvs.push(e);
        zip.readEntry();
      });
      zip.on('error', (e: Error) => reject(new TitlesInputError(name, `corrupt zip archive (${e.message})`)));
      zip.on('end', () => {
        const pick = csvs.length === 1 ? csvs[0] : csvs.find((e) => path.posix.basename(e.fileName) === 'netflix_titles.csv');
        if (!pick) {
          zip.close();
          return reject(new TitlesInputError(name, csvs.length
            ? `the archive holds ${csvs.length} CSV files (${csvs.map((e) => e.fileName).join(', ')}) and none is netflix_titles.csv`
            : 'the archive holds no .csv file'));
        }
        zip.openReadStream(pick, (err2, rs) => {
          if (err2 || !rs) { zip.close(); return reject(new TitlesInputError(name, `cannot read ${pick.fileName} in the archive (${err2?.message})`)); }
          rs.once('close', () => zip.close());
          const c = counting(pick.uncompressedSize);
          resolve({
            entry: pick.fileName,
            stream: mapErrors(c.tap(rs), (e) => new TitlesInputError(`${name}:${pick.fileName}`, `corrupt zip entry (${e.message})`)),
            size: pick.uncompressedSize,
            consumed: c.consumed,
          });
        });
      });
      zip.readEntry();
    });
  });
}

export async function openSource(input: SourceInput): Promise<OpenedSource> {
  if (typeof input === 'string' && input !== '-') {
    const file = input;
    let stat: fs.Stats;
    try { stat = fs.statSync(file); } catch (e: any) {
      throw new TitlesInputError(file, e.code === 'ENOENT' ? 'no such file' : `cannot read (${e.code ?? e.message})`);
    }
    if (stat.isDirectory()) throw new TitlesInputError(file, 'is a directory, not a CSV file');
    const head = readHead(file, 4);
    if (startsWith(head, ZIP)) {
      const z = await openZip(file);
      return { name: `${file}:${z.entry}`, container: 'zip', stream: z.stream, consumed: z.consumed, total: z.size };
    }
    const c = counting(stat.size);
    const raw = c.tap(fs.createReadStream(file, { highWaterMark: 1 << 18 }));
    if (startsWith(head, GZIP)) return { name: file, container: 'gzip', stream: gunzip(file, raw), consumed: c.consumed, total: stat.size };
    return { name: file, container: 'plain', stream: raw, consumed: c.consumed, total: stat.size };
  }
  const name = typeof input === 'string' ? 'stdin' : input.name;
  const { head, stream } = await peek(typeof input === 'string' ? process.stdin : input.stream, 4);
  const c = counting(undefined);
  const raw = c.tap(stream);
  if (startsWith(head, ZIP)) {
    throw new TitlesInputError(name, 'a zip archive cannot be read from a stream (its directory is at the end): pass the .zip path, or unzip -p it into the pipe');
  }
  if (startsWith(head, GZIP)) return { name, container: 'gzip', stream: gunzip(name, raw), consumed: c.consumed };
  return { name, container: 'plain', stream: raw, consumed: c.consumed };
}
