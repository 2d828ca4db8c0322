// READDIR cookies that survive directory changes. An entry's cookie is
//   (47-bit keyed hash of its name) << 16 | 16-bit keyed MAC of (dir, hash)
// so it does not depend on where the entry sits in the directory: entries
// are served in hash order and a page resumes at the first hash above the
// cookie's, which never skips or repeats a surviving entry however the
// directory changed in between. The MAC lets a forged cookie be refused
// (EBADCOOKIE) instead of silently positioning anywhere. 0 is "start",
// 1 and 2 are the cookies of `.` and `..`, which are listed first.

import crypto from 'node:crypto';
import type { Attrs, DirEntry, Time } from './backend.js';
import { xdrPad } from './attrs.js';
import { fsError } from './errors.js';

export const COOKIE_DOT = 1n;
export const COOKIE_DOTDOT = 2n;
const HASH_MAX = 2 ** 47 - 1;

/** RFC 1813 sizes: a READDIR reply without entries, and one entry. */
const REPLY_OVERHEAD = 4 + (4 + 84) + 8 + 4 + 4; // status, dir attrs, verifier, list end, eof
const ENTRY_FIXED = 4 + 8 + 4 + 8; // value_follows, fileid, name length, cookie
const PLUS_EXTRA = 4 + 84 + 4 + 4 + 64; // post_op_attr, post_op_fh3 (largest handle)

export function entrySize(nameBytes: number, plus: boolean): number {
  return ENTRY_FIXED + xdrPad(nameBytes) + (plus ? PLUS_EXTRA : 0);
}

export class DirCookies {
  private readonly hashKey: Buffer;
  private readonly macKey: Buffer;

  constructor(secret: Buffer) {
    this.hashKey = crypto.createHmac('sha256', secret).update('readdir-name-hash').digest();
    this.macKey = crypto.createHmac('sha256', secret).update('readdir-cookie-mac').digest();
  }

  /** 1 .. 2^47-1; 0 would collide with the small fixed cookies. */
  hashName(name: string): number {
    const d = crypto.createHash('sha256').update(this.hashKey).update(name).digest();
    return Math.floor(d.readUIntBE(0, 6) / 2) || 1;
  }

  encode(dirKey: Buffer, h: number): bigint {
    return (BigInt(h) << 16n) | BigInt(this.mac(dirKey, h));
  }

  /**
   * The position a cookie stands for: -1 before everything, 0 after `.`,
   * 0.5 after `..`, else the entry hash (entries resume strictly above it).
   */
  decode(dirKey: Buffer, cookie: bigint): number {
    if (cookie === 0n) return -1;
    if (cookie === COOKIE_DOT) return 0;
    if (cookie === COOKIE_DOTDOT) return 0.5;
    if (cookie < 0n || cookie >= 1n << 63n) throw fsError('EBADCOOKIE');
    const h = Number(cookie >> 16n);
    if (h < 1 || this.mac(dirKey, h) !== Number(cookie & 0xffffn)) throw fsError('EBADCOOKIE');
    return h;
  }

  /** The cookie verifier: the directory's mtime (the server checks it leniently). */
  verifier(mtime: Time): Buffer {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(mtime.sec >>> 0, 0);
    b.writeUInt32BE(mtime.nsec >>> 0, 4);
    return b;
  }

  private mac(dirKey: Buffer, h: number): number {
    const hb = Buffer.alloc(8);
    hb.writeUIntBE(h, 2, 6);
    return crypto.createHmac('sha256', this.macKey).update(dirKey).update(hb).digest().readUInt16BE(0);
  }
}

/** A directory's names in cookie order; `hashes` strictly increase. */
export interface Snapshot {
  names: string[];
  hashes: number[];
  /** Unbumped hash per name, reused by the next snapshot of the same directory. */
  raw: Map<string, number>;
}

/** Sort names by hash; the rare equal hashes are bumped to keep them distinct. */
export function buildSnapshot(cookies: DirCookies, names: Iterable<string>, prev?: Snapshot): Snapshot {
  const raw = new Map<string, number>();
  for (const name of names) raw.set(name, prev?.raw.get(name) ?? cookies.hashName(name));
  const order = [...raw.keys()].sort((a, b) => raw.get(a)! - raw.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  const hashes: number[] = new Array(order.length);
  let last = 0;
  for (let i = 0; i < order.length; i++) {
    const h = Math.max(raw.get(order[i])!, last + 1);
    hashes[i] = Math.min(h, HASH_MAX);
    last = hashes[i]!;
  }
  return { names: order, hashes, raw };
}

/** Index of the first entry whose hash is above `pos`. */
export function firstAfter(snap: Snapshot, pos: number): number {
  let lo = 0;
  let hi = snap.hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (snap.hashes[mid]! <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What a backend tells about one entry; undefined when it vanished. */
export interface EntryInfo {
  fileid: bigint;
  node?: Buffer;
  attrs?: Attrs;
}

export interface PageRequest {
  cookies: DirCookies;
  dirKey: Buffer;
  snap: Snapshot;
  cookie: bigint;
  maxBytes: number;
  plus: boolean;
  dot: () => Promise<EntryInfo>;
  dotdot: () => Promise<EntryInfo>;
  describe: (name: string) => Promise<EntryInfo | undefined>;
}

const DESCRIBE_BATCH = 64;

/**
 * One page of entries after `cookie`, fitting `maxBytes`. Entries that
 * vanished since the snapshot are skipped without using budget.
 */
export async function readPage(req: PageRequest): Promise<{ entries: DirEntry[]; eof: boolean }> {
  const pos = req.cookies.decode(req.dirKey, req.cookie);
  const avail = req.maxBytes - REPLY_OVERHEAD;
  const entries: DirEntry[] = [];
  let used = 0;
  const fits = (nameBytes: number): boolean => used + entrySize(nameBytes, req.plus) <= avail;
  const push = (name: string, cookie: bigint, info: EntryInfo): void => {
    const entry: DirEntry = { name, cookie, fileid: info.fileid };
    if (req.plus && info.node && info.attrs) {
      entry.node = info.node;
      entry.attrs = info.attrs;
    }
    entries.push(entry);
    used += entrySize(Buffer.byteLength(name), req.plus);
  };
  const dots: [string, bigint, () => Promise<EntryInfo>, boolean][] = [
    ['.', COOKIE_DOT, req.dot, pos < 0],
    ['..', COOKIE_DOTDOT, req.dotdot, pos < 0.5],
  ];
  for (const [name, cookie, info, wanted] of dots) {
    if (!wanted) continue;
    if (!fits(name.length)) {
      if (entries.length === 0) tooSmall();
      return { entries, eof: false };
    }
    push(name, cookie, await info());
  }
  const { snap } = req;
  let i = firstAfter(snap, pos);
  while (i < snap.names.length) {
    const batch: { name: string; bytes: number; h: number }[] = [];
    let planned = used;
    while (i < snap.names.length && batch.length < DESCRIBE_BATCH) {
      const name = snap.names[i]!;
      const bytes = Buffer.byteLength(name);
      const size = entrySize(bytes, req.plus);
      if (planned + size > avail) break;
      batch.push({ name, bytes, h: snap.hashes[i]! });
      planned += size;
      i++;
    }
    if (batch.length === 0) break;
    const infos = await Promise.all(batch.map((e) => req.describe(e.name)));
    batch.forEach((e, k) => {
      const info = infos[k];
      if (info) push(e.name, req.cookies.encode(req.dirKey, e.h), info);
    });
  }
  const eof = i >= snap.names.length;
  if (!eof && entries.length === 0) tooSmall();
  return { entries, eof };
}

function tooSmall(): never {
  throw fsError('ETOOSMALL', 'reply too small for one entry');
}
