// The inode index of the local backend: inode -> (parent inode, name), so a
// node id (which names an inode, not a path) can be turned back into a path
// after any rename above it. It is a hint: every path it gives is verified
// with lstat, and a wrong or missing entry is repaired by searching.
//
// Persistence is an append-only journal of JSON lines in the state directory,
// compacted when opened and when it grows much larger than the live set.
// Appends are batched; losing the tail in a crash only costs a search.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { FileHandle } from 'node:fs/promises';

export interface IndexEntry {
  parent: bigint;
  name: string;
  /** Incarnation: bumped when an inode comes back with the same birth time (see LocalBackend). */
  inc: number;
  /** Identity stamp for file systems without birth times. */
  tag?: bigint;
}

type Record = ['h', number, string, string] | ['s', string, string, string, number, string | null] | ['d', string];

const FORMAT = 1;
const FLUSH_DELAY_MS = 20;
const MAX_DEPTH = 4096;

export class InodeIndex {
  private readonly map = new Map<bigint, IndexEntry>();
  private pending: string[] = [];
  private journal?: FileHandle;
  private journalLines = 0;
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly file: string | undefined,
    private readonly header: Record,
  ) {}

  /** Open (and compact) the journal; an index made for another root starts empty. */
  static async open(stateDir: string | undefined, dev: bigint, rootIno: bigint): Promise<InodeIndex> {
    const header: Record = ['h', FORMAT, dev.toString(), rootIno.toString()];
    if (!stateDir) return new InodeIndex(undefined, header);
    // Named after the root, so backends sharing a state directory keep apart.
    const idx = new InodeIndex(path.join(stateDir, `inode-index-${dev}-${rootIno}.jsonl`), header);
    await idx.load();
    await idx.compact();
    return idx;
  }

  get size(): number {
    return this.map.size;
  }

  get(ino: bigint): IndexEntry | undefined {
    return this.map.get(ino);
  }

  /** Record where an inode lives; journals only real changes. */
  set(ino: bigint, parent: bigint, name: string, extra: { inc?: number; tag?: bigint } = {}): IndexEntry {
    const old = this.map.get(ino);
    const inc = extra.inc ?? old?.inc ?? 0;
    const tag = extra.tag ?? old?.tag;
    if (old && old.parent === parent && old.name === name && old.inc === inc && old.tag === tag) return old;
    const e: IndexEntry = { parent, name, inc, ...(tag !== undefined ? { tag } : {}) };
    this.map.set(ino, e);
    this.append(['s', ino.toString(), parent.toString(), name, inc, tag?.toString() ?? null]);
    return e;
  }

  drop(ino: bigint): void {
    if (!this.map.delete(ino)) return;
    this.append(['d', ino.toString()]);
  }

  /** Names from the root down to `ino`, or undefined where the chain breaks. */
  namesOf(ino: bigint, rootIno: bigint): string[] | undefined {
    const names: string[] = [];
    let cur = ino;
    while (cur !== rootIno) {
      const e = this.map.get(cur);
      if (!e || names.length >= MAX_DEPTH) return undefined;
      names.push(e.name);
      cur = e.parent;
    }
    return names.reverse();
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.chain = this.chain.then(() => this.writePending());
    return this.chain;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.journal?.close().catch(() => undefined);
    this.journal = undefined;
  }

  private append(rec: Record): void {
    if (!this.file || this.closed) return;
    this.pending.push(JSON.stringify(rec));
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_DELAY_MS).unref();
  }

  private async writePending(): Promise<void> {
    if (!this.file || this.pending.length === 0) return;
    if (!this.journal) {
      try {
        this.journal = await fs.open(this.file, 'a', 0o600);
      } catch {
        return;
      }
    }
    const lines = this.pending;
    this.pending = [];
    try {
      await this.journal.write(lines.join('\n') + '\n');
      this.journalLines += lines.length;
      if (this.journalLines > 4 * this.map.size + 100_000) await this.compact();
    } catch {
      // The index is a hint: a failed append only means a search later.
    }
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await fs.readFile(this.file!, 'utf8');
    } catch {
      return;
    }
    const lines = text.split('\n');
    if (lines[0] !== JSON.stringify(this.header)) return;
    for (const line of lines.slice(1)) {
      if (line) this.replay(line);
    }
  }

  private replay(line: string): void {
    let rec: Record;
    try {
      rec = JSON.parse(line) as Record;
    } catch {
      return; // a torn last line
    }
    if (rec[0] === 's') {
      const [, ino, parent, name, inc, tag] = rec;
      this.map.set(BigInt(ino), { parent: BigInt(parent), name, inc, ...(tag !== null ? { tag: BigInt(tag) } : {}) });
    } else if (rec[0] === 'd') {
      this.map.delete(BigInt(rec[1]));
    }
  }

  /** Rewrite the journal as one record per live entry, atomically. */
  private async compact(): Promise<void> {
    const file = this.file!;
    const tmp = `${file}.tmp`;
    const out = [JSON.stringify(this.header)];
    for (const [ino, e] of this.map) {
      out.push(JSON.stringify(['s', ino.toString(), e.parent.toString(), e.name, e.inc, e.tag?.toString() ?? null]));
    }
    const old = this.journal;
    this.journal = undefined; // appends wait for the new file rather than go to a closed one
    await old?.close().catch(() => undefined);
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.write(out.join('\n') + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
    this.journal = await fs.open(file, 'a', 0o600);
    this.journalLines = out.length;
  }
}
