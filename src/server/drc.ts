// Duplicate request cache: a client that does not see a reply resends the
// call with the same xid. For non-idempotent procedures (CREATE, REMOVE,
// RENAME, ...) running it again would answer wrongly (EEXIST, ENOENT), so the
// first reply is saved and sent again instead.
//
// The key is the client's IP address (not its port: after a reconnect the
// client resends from a new port), xid, program, version, procedure, and a
// hash of the arguments, so that a client reusing an xid for a different
// call is not answered with the old reply. Hashing covers the first
// HASH_PREFIX bytes plus the total length, as Linux's nfsd does: enough to
// tell calls apart (handles, names, offsets sit up front) without hashing
// whole WRITE payloads. The credential is left out: clients may refresh the
// AUTH_SYS stamp when they retransmit.
//
// Bounded by entry count and bytes; least recently used go first; a saved
// reply expires `ttlMs` after it was last touched (so LRU order is also
// expiry order, and expired entries are swept from the front).

import type { CallContext, ReplyCache } from '../rpc/index.js';

export interface DrcKey {
  /** The client's IP address; the port is ignored. */
  address: string;
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  /** The call's argument bytes. */
  args: Buffer;
}

export type DrcLookup = 'miss' | 'in-progress' | { reply: Buffer };

export interface DrcOptions {
  maxEntries?: number;
  maxBytes?: number;
  ttlMs?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

export interface DrcCounters {
  hits: number;
  misses: number;
  inProgress: number;
  evictions: number;
  expirations: number;
}

const HASH_PREFIX = 1024;
/** Rough per-entry cost beyond the reply itself (key string, entry object, map slot). */
const ENTRY_OVERHEAD = 160;

interface Entry {
  key: string;
  reply: Buffer | undefined; // undefined while the call runs
  cost: number;
  touched: number;
  // LRU list, oldest at the head. Iterating a Map after many deletions is
  // slow in V8 (it walks the holes), so order lives in this list instead.
  prev: Entry | undefined;
  next: Entry | undefined;
}

export class DuplicateRequestCache implements ReplyCache<Entry> {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly ttlMs: number;
  readonly counters: DrcCounters = { hits: 0, misses: 0, inProgress: 0, evictions: 0, expirations: 0 };
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  private head: Entry | undefined;
  private tail: Entry | undefined;
  private bytesUsed = 0;

  constructor(opts: DrcOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 16384;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    this.ttlMs = opts.ttlMs ?? 120_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.bytesUsed;
  }

  /**
   * 'miss' also reserves the key as in progress: the caller must then call
   * `insert` with the reply, or with undefined if the call should run again.
   */
  lookup(k: DrcKey): DrcLookup {
    const r = this.reserve(drcKey(k));
    return r === 'drop' ? 'in-progress' : Buffer.isBuffer(r) ? { reply: r } : 'miss';
  }

  /** Save the encoded reply of a completed call (undefined: forget the call). */
  insert(k: DrcKey, reply: Buffer | undefined): void {
    this.replace(drcKey(k), reply);
  }

  // The RpcServer's ReplyCache interface: the entry reserved by begin is
  // end's ticket, so the key is made and hashed once per call.
  begin(ctx: CallContext): 'drop' | Buffer | Entry {
    return this.reserve(drcKey(contextKey(ctx)));
  }

  end(ticket: Entry, reply: Buffer | undefined): void {
    this.replace(ticket.key, reply);
  }

  /** A saved reply, 'drop' for a call still running, or the in-progress entry made for a new call. */
  private reserve(key: string): 'drop' | Buffer | Entry {
    const now = this.now();
    this.expire(now);
    const e = this.entries.get(key);
    if (e) {
      this.unlink(e);
      e.touched = now;
      this.append(e);
      if (e.reply) {
        this.counters.hits++;
        return e.reply;
      }
      this.counters.inProgress++;
      return 'drop';
    }
    this.counters.misses++;
    return this.put(key, undefined, ENTRY_OVERHEAD, now);
  }

  /**
   * Whatever the key holds now (the call's mark; a retransmission's, if
   * the mark was evicted meanwhile) gives way to the reply.
   */
  private replace(key: string, reply: Buffer | undefined): void {
    const old = this.entries.get(key);
    if (old) this.remove(old);
    if (!reply) return;
    const cost = reply.length + ENTRY_OVERHEAD;
    if (cost <= this.maxBytes) this.put(key, reply, cost, this.now());
  }

  clear(): void {
    this.entries.clear();
    this.head = this.tail = undefined;
    this.bytesUsed = 0;
  }

  private put(key: string, reply: Buffer | undefined, cost: number, now: number): Entry {
    const e: Entry = { key, reply, cost, touched: now, prev: undefined, next: undefined };
    this.entries.set(key, e);
    this.append(e);
    this.bytesUsed += cost;
    while (this.head && (this.entries.size > this.maxEntries || this.bytesUsed > this.maxBytes)) {
      this.remove(this.head);
      this.counters.evictions++;
    }
    return e;
  }

  private remove(e: Entry): void {
    this.entries.delete(e.key);
    this.unlink(e);
    this.bytesUsed -= e.cost;
  }

  private append(e: Entry): void {
    e.prev = this.tail;
    e.next = undefined;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = undefined;
  }

  private expire(now: number): void {
    let e = this.head;
    while (e && now - e.touched >= this.ttlMs) {
      const next = e.next;
      // A call still running keeps its mark: expiring it would let a
      // retransmission of a slow call run it a second time.
      if (e.reply) {
        this.remove(e);
        this.counters.expirations++;
      }
      e = next;
    }
  }
}

function contextKey(ctx: CallContext): DrcKey {
  return { address: ctx.conn.remoteAddress, xid: ctx.xid, prog: ctx.prog, vers: ctx.vers, proc: ctx.proc, args: ctx.args };
}

function drcKey(k: DrcKey): string {
  // One client over IPv4 and over an IPv4-mapped IPv6 socket is one client.
  const addr = k.address.startsWith('::ffff:') && k.address.includes('.') ? k.address.slice(7) : k.address;
  return `${addr}|${k.xid >>> 0}|${k.prog}|${k.vers}|${k.proc}|${k.args.length}|${argsHash(k.args)}`;
}

/** FNV-1a, 32-bit, over the first HASH_PREFIX bytes. Not adversarial: the key already pins the client's address. */
function argsHash(args: Buffer): string {
  let h = 0x811c9dc5;
  const n = Math.min(args.length, HASH_PREFIX);
  for (let i = 0; i < n; i++) h = Math.imul(h ^ args[i]!, 0x01000193);
  return (h >>> 0).toString(36);
}
