/**
 * Media files of tasks on SQLite on a file: a task's media blob goes to a file of its own (one
 * write of the bytes rather than SQLite's page-by-page copy into its log and then into the
 * database), and the `media_file` column names it. The store writes the file from the event loop
 * with fs.promises (libuv's pool writes the buffers where they are) before the row that names it
 * goes to the writer thread: posting the bytes to the thread cost a structured clone per MiB.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { WriterFile } from './sqlite-writer.js';

/** The folder of a database's media files: `<file>-media` beside a SQLite file, else null. */
export function mediaDirOf(db: Knex): string | null {
  if (db.client.config.client !== 'better-sqlite3') return null;
  const { filename } = (db.client.config.connection ?? {}) as { filename?: unknown };
  return typeof filename === 'string' && filename !== '' && filename !== ':memory:' && !filename.includes('mode=memory') ? `${filename}-media` : null;
}

/** The name of a task's media file: the SHA-256 of its id, whatever characters the id holds. */
export function mediaFileName(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** The file to write for a task's media, given as a blob or as its pieces. */
export function mediaFile(id: string, attachments: Buffer | readonly Uint8Array[]): WriterFile {
  return [mediaFileName(id), Buffer.isBuffer(attachments) ? [attachments] : attachments];
}

/**
 * Writes the files into `dir` (created when needed), each replaced whole, all at once. Resolves
 * once every file is written; rejects with the first error of the file system (its `code` kept).
 */
export async function writeMediaFiles(dir: string, files: readonly WriterFile[]): Promise<void> {
  // The folder is made once, not before every file (a system call through libuv's pool per
  // result); a write that finds it gone (removed by hand) makes it again and tries once more.
  if (!madeDirs.has(dir)) {
    await fs.promises.mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  }
  try {
    await Promise.all(files.map(([name, pieces]) => writePieces(path.join(dir, name), pieces)));
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    await fs.promises.mkdir(dir, { recursive: true });
    await Promise.all(files.map(([name, pieces]) => writePieces(path.join(dir, name), pieces)));
  }
}

/** Media folders made by this process. */
const madeDirs = new Set<string>();

/**
 * Writes `pieces` to `file` (replaced) with one `writev` per call rather than one write per
 * 64 KiB (what `writeFile` does: 17 system calls for a 1 MiB result); a short write goes on
 * from where it stopped.
 */
async function writePieces(file: string, pieces: readonly Uint8Array[]): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    let rest = unwritten(pieces, 0);
    while (rest.length > 0) {
      const { bytesWritten } = await handle.writev(rest as Uint8Array[]);
      if (bytesWritten <= 0) throw Object.assign(new Error(`no byte of ${file} could be written`), { code: 'EIO' });
      rest = unwritten(rest, bytesWritten);
    }
  } finally {
    await handle.close();
  }
}

/** What is left of `pieces` once their first `written` bytes are written. */
export function unwritten(pieces: readonly Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = written;
  for (const p of pieces) {
    if (skip >= p.byteLength) {
      skip -= p.byteLength;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}

/** The bytes of a media file in `dir`; null when the file is gone (deleted by hand). */
export async function readMediaFile(dir: string, name: string): Promise<Buffer | null> {
  return await fs.promises.readFile(path.join(dir, name)).catch(() => null);
}

/** Deletes media files from `dir`; a file already gone is no error. */
export async function removeMediaFiles(dir: string, names: readonly string[]): Promise<void> {
  for (const f of names) await fs.promises.rm(path.join(dir, f), { force: true });
}
