// The exports a running server serves: each export's rules, its backend and
// its id (from the state directory), and the checks every request path
// (MOUNT, NFSv3, and later LOCALIO) applies in the same way:
//
//   handle -> export      FileHandles decode; unknown export id = stale
//   client -> options     the export's client rules for the caller's address
//                         and source port, cached per connection (a TCP
//                         connection's peer never changes)
//   caller -> credential  mapCred with the options' squash rules
//
// (LOCALIO's grants, src/localio/server.ts, go through the same three steps.)
//
// A client the rules do not admit is refused with a reason, so each protocol
// can answer in its own terms (MNT3ERR_ACCES, NFS3ERR_ACCES, NFS3ERR_PERM).

import path from 'node:path';
import type { Backend } from '../fs/backend.js';
import type { RpcConnectionInfo } from '../rpc/index.js';
import { findClientRule, type Export, type ExportOptions } from './exports.js';
import { FileHandles } from './handles.js';
import { normalizeExportPath } from './state.js';

export interface ServedExport {
  /** The export id kept in the state directory; part of every handle. */
  readonly id: number;
  /** Absolute, normalized: what clients ask MOUNT for. */
  readonly path: string;
  readonly rules: Export;
  readonly backend: Backend;
  /** The backend's node id of the export's root. */
  readonly rootNode: Buffer;
  /** The signed file handle of the root. */
  readonly rootHandle: Buffer;
  /** Whether the server made this backend (and closes it) or an embedder passed it in. */
  readonly owned: boolean;
}

/** What a client may do with an export. */
export type ClientAccess =
  | { readonly ok: true; readonly options: ExportOptions; /** fsid reported in attributes (the `fsid=` option), if set */ readonly fsid: bigint | undefined }
  /** 'denied': no rule admits the address; 'insecure': the rule wants a source port below 1024. */
  | { readonly ok: false; readonly reason: 'denied' | 'insecure' };

const DENIED: ClientAccess = Object.freeze({ ok: false, reason: 'denied' });
const INSECURE: ClientAccess = Object.freeze({ ok: false, reason: 'insecure' });

export class ExportSet {
  readonly handles: FileHandles;
  private readonly byIdMap = new Map<number, ServedExport>();
  private readonly byPathMap = new Map<string, ServedExport>();
  // Per connection, per export id. A WeakMap: entries go with their connection.
  private accessCache = new WeakMap<RpcConnectionInfo, Map<number, ClientAccess>>();

  constructor(secret: Buffer) {
    this.handles = new FileHandles(secret, { isExport: (id) => this.byIdMap.has(id) });
  }

  add(e: Omit<ServedExport, 'rootHandle'>): ServedExport {
    if (this.byIdMap.has(e.id)) throw new Error(`export id ${e.id} is already in use (${e.path})`);
    if (this.byPathMap.has(e.path)) throw new Error(`${e.path} is exported twice`);
    const served: ServedExport = { ...e, rootHandle: this.handles.encodeHandle(e.id, e.rootNode) };
    this.byIdMap.set(e.id, served);
    this.byPathMap.set(e.path, served);
    return served;
  }

  /**
   * Stop serving an export: its handles become stale (NFS3ERR_STALE) and
   * MNT no longer finds it. Returns what was removed.
   */
  remove(id: number): ServedExport | undefined {
    const e = this.byIdMap.get(id);
    if (!e) return undefined;
    this.byIdMap.delete(id);
    this.byPathMap.delete(e.path);
    this.clearAccessCache();
    return e;
  }

  get size(): number {
    return this.byIdMap.size;
  }

  list(): ServedExport[] {
    return [...this.byIdMap.values()];
  }

  byId(id: number): ServedExport | undefined {
    return this.byIdMap.get(id);
  }

  /**
   * The export holding an absolute path (the longest exported prefix, as
   * rpc.mountd does, so a subdirectory of an export may be mounted) and the
   * components below it. `..` is resolved textually first, so it cannot
   * climb out of an export.
   */
  forPath(p: string): { exp: ServedExport; rest: string[] } | undefined {
    if (!p.startsWith('/') || p.includes('\0')) return undefined;
    let cur = normalizeExportPath(p);
    const rest: string[] = [];
    for (;;) {
      const exp = this.byPathMap.get(cur);
      if (exp) return { exp, rest: rest.reverse() };
      if (cur === '/') return undefined;
      rest.push(path.posix.basename(cur));
      cur = path.posix.dirname(cur);
    }
  }

  /** The client's standing with an export, from the connection's address and source port. */
  access(exp: ServedExport, conn: RpcConnectionInfo): ClientAccess {
    let perConn = this.accessCache.get(conn);
    if (!perConn) this.accessCache.set(conn, (perConn = new Map()));
    let a = perConn.get(exp.id);
    if (!a) {
      a = decideAccess(exp.rules, conn.remoteAddress, conn.remotePort);
      perConn.set(exp.id, a);
    }
    return a;
  }

  /** A signed handle for a node of an export. */
  handleOf(exp: ServedExport, node: Buffer): Buffer {
    return this.handles.encodeHandle(exp.id, node);
  }

  /** Forget cached decisions (after the rules change). */
  clearAccessCache(): void {
    this.accessCache = new WeakMap();
  }
}

export function decideAccess(rules: Export, address: string, port: number): ClientAccess {
  const rule = findClientRule(rules, address);
  if (!rule) return DENIED;
  if (rule.options.secure && port >= 1024) return INSECURE;
  return { ok: true, options: rule.options, fsid: rule.options.fsid === undefined ? undefined : BigInt(rule.options.fsid) };
}

/** `::ffff:10.0.0.1` -> `10.0.0.1`: one client, whichever socket family it came in on. */
export function clientAddress(conn: RpcConnectionInfo): string {
  const a = conn.remoteAddress;
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
