// The server side of LOCALIO: program 400122 version 1 on the NFS
// connections, the channels it opens to co-located clients, and the grants
// it gives them.
//
// UUID_IS_LOCAL(uuid), on an NFS connection:
//   1. A client of this very process registered that nonce (the in-process
//      registry): it gets an embedded session at once (no descriptors).
//   2. Else, when descriptor passing is available and <registry>/<uuid>.sock
//      is a socket: connect to it, send HELLO (nonce, instance id, write
//      verifier) and wait until the kernel has it. The connection becomes a
//      channel tied to the NFS connection the call came on.
//   3. Reply (void) in every case: the reply proves nothing; only the
//      connection does.
//
// OPEN on a channel (and open() on an embedded session) goes the way every
// NFSv3 request goes (src/server/nfs3.ts): handle -> export (BADHANDLE,
// STALE), the export's client rules for the NFS connection's address and
// source port (ACCES, PERM), read-only exports grant no read-write access
// (ROFS), the caller's AUTH_SYS ids squashed by mapCred, and the permission
// checks of the backend as that user (backend.open, or backend.access for
// embedded grants). On a channel the claimed ids are checked first against
// SO_PEERCRED: a peer that is not root may only claim its own uid, and
// groups it is in (its primary gid or those /proc lists for it); other
// claimed supplementary groups are dropped, another uid or primary gid is
// refused (PERM). A grant is a new open file description, sent with
// SCM_RIGHTS and closed here once sent.
//
// Limits: 1024 channels (past it a probe gets no connection: RPC), 64 OPENs
// in progress per channel (past it the channel is not read), 4096 grants
// per channel (past it OPEN answers NFS3ERR_JUKEBOX).
//
// Revocation: unexporting sends REVOKE with the grants of that export to
// every channel holding some and waits (1 s) for REVOKED; a channel that does
// not answer in time is closed. Embedded grants are marked revoked at once.
// Stopping the server closes every channel and ends every embedded session.
//
// A descriptor, once passed, is the client's: the kernel cannot take it
// back. The interlock relies on the client honouring REVOKE and the end of
// the channel (tsnfs's client does: src/localio/client.ts); what a client
// can do with a grant is bounded by what the export rules and the
// permission checks allowed for its proven uid when it was granted.

import { readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { FdChannel, fdPassingAvailable, type PeerCred, type ReceivedMessage } from '../native/index.js';
import { LOCALIO_V1_TABLE } from '../proto/localio.gen.js';
import { nfsstat3, type wcc_data } from '../proto/nfs3.gen.js';
import { Access, FileType, type Backend, type Cred, type Wcc } from '../fs/backend.js';
import type { ProgramVersion, RpcConnectionInfo } from '../rpc/index.js';
import { XdrReader, XdrWriter } from '../xdr/index.js';
import { type Logger, silentLogger } from '../log.js';
import type { ExportSet, ServedExport } from '../server/export-set.js';
import { mapCred, type CallerIds, type ExportOptions } from '../server/exports.js';
import { nfsStatus, toFattr } from '../server/nfs3.js';
import { serveTable } from '../server/program.js';
import type { ServerStats } from '../server/stats.js';
import type { CommitResult, ReadResult, StableHow, WriteResult } from '../client/transport.js';
import { NfsStatusError } from '../client/errors.js';
import { chan_type, decodechan_msg, encodechan_msg, LOCALIO_CHANNEL_VERSION, type chan_msg, type chan_open } from './channel.gen.js';
import { defaultRegistryDir, socketPathFor, takeInProcess } from './registry.js';

export interface LocalioServerOptions {
  exports: ExportSet;
  /** The NFSv3 write verifier (ServerState.writeVerifier). */
  writeVerifier: Buffer;
  /** Registry directory (default: defaultRegistryDir()). */
  registry?: string;
  logger?: Logger;
  /** Byte counters of embedded IO are added here (transport 'localio'). */
  stats?: ServerStats;
  /** How long unexport waits for clients to close revoked grants (default 1000 ms). */
  revokeTimeoutMs?: number;
}

/** Counters of the server side (plain JSON). */
export interface LocalioServerCounters {
  /** UUID_IS_LOCAL calls answered. */
  probes: number;
  /** ...that found the client's socket and sent it HELLO. */
  probesLocal: number;
  /** ...that found a client of this process (embedded). */
  probesInProcess: number;
  /** ...that found nothing (a remote client, or another registry). */
  probesNotFound: number;
  /** ...whose socket was there but could not be reached. */
  probesFailed: number;
  channelsOpened: number;
  embeddedSessions: number;
  grants: number;
  grantsReadOnly: number;
  grantsReadWrite: number;
  /** Grants refused, by nfsstat3 name. */
  refusals: Record<string, number>;
  /** Opens refused because the claimed ids did not match SO_PEERCRED. */
  peerCredRefusals: number;
  revoked: number;
  /** Channels closed because they did not answer REVOKE in time. */
  revokeTimeouts: number;
}

export interface LocalioServerStats extends LocalioServerCounters {
  fdPassing: boolean;
  registry: string;
  channels: number;
  grantsOpen: number;
}

const STATUS_NAMES = new Map<number, string>(Object.entries(nfsstat3).map(([k, v]) => [v, k]));

/** Why an open was refused. */
interface Refusal {
  ok: false;
  status: number;
  reason: string;
}

interface Decision {
  ok: true;
  exp: ServedExport;
  node: Buffer;
  opts: ExportOptions;
  fsid: bigint | undefined;
  cred: Cred;
}

function refuse(status: number, reason: string): Refusal {
  return { ok: false, status, reason };
}

function encodeMsg(m: chan_msg): Buffer {
  const w = new XdrWriter(128);
  encodechan_msg(w, m);
  return w.toBuffer();
}

/** Supplementary groups of a process, from /proc (empty when unknown or when it is not `uid`'s). */
function groupsOfPid(pid: number, uid: number): Set<number> {
  const out = new Set<number>();
  if (pid <= 0) return out;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return out;
  }
  const uidLine = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  if (!uidLine || (Number(uidLine[1]) !== uid && Number(uidLine[2]) !== uid)) return out;
  const groups = /^Groups:\s*(.*)$/m.exec(text);
  if (groups) for (const g of groups[1]!.trim().split(/\s+/)) if (g !== '' && /^\d+$/.test(g)) out.add(Number(g));
  const gidLine = /^Gid:\s+(\d+)\s+(\d+)/m.exec(text);
  if (gidLine) {
    out.add(Number(gidLine[1]));
    out.add(Number(gidLine[2]));
  }
  return out;
}

function toWcc(w: Wcc, fsid: bigint | undefined): wcc_data {
  return {
    before: w.before && { size: w.before.size, mtime: { seconds: w.before.mtime.sec >>> 0, nseconds: w.before.mtime.nsec >>> 0 }, ctime: { seconds: w.before.ctime.sec >>> 0, nseconds: w.before.ctime.nsec >>> 0 } },
    after: w.after && toFattr(w.after, fsid),
  };
}

// ---------------------------------------------------------------- channels

interface ServerGrant {
  exportId: number;
  write: boolean;
}

/** OPENs one channel may have in progress; past it the server stops reading the channel. */
const MAX_OPENS_IN_PROGRESS = 64;
/** Grants one channel may hold (the client's own limit is far lower). */
const MAX_GRANTS_PER_CHANNEL = 4096;
/** Channels open at once; past it probes find the server busy (the clients stay on RPC). */
const MAX_CHANNELS = 1024;

class ServerChannel {
  readonly grants = new Map<number, ServerGrant>();
  opening = 0;
  /** Revoked grant ids not yet confirmed, with the waiter to wake when none is left. */
  private revoking = new Set<number>();
  private revokeWaiters: (() => void)[] = [];
  private groups: Set<number> | undefined;

  constructor(
    readonly ch: FdChannel,
    /** The NFS connection the probe came on: its address decides the export rules. */
    readonly conn: RpcConnectionInfo,
    readonly peer: PeerCred,
  ) {}

  /** Groups the peer process is in (primary and supplementary), read once. */
  peerGroups(): Set<number> {
    this.groups ??= groupsOfPid(this.peer.pid, this.peer.uid);
    this.groups.add(this.peer.gid);
    return this.groups;
  }

  send(m: chan_msg, fds: readonly number[] = []): Promise<void> {
    return this.ch.send(encodeMsg(m), fds);
  }

  revoke(ids: number[], timeoutMs: number): Promise<boolean> {
    for (const id of ids) this.revoking.add(id);
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      timer.unref();
      this.revokeWaiters.push(() => {
        if (ids.every((id) => !this.revoking.has(id))) finish(true);
      });
      this.ch.once('close', () => finish(true));
      this.send({ type: chan_type.CHAN_REVOKE, revoke: { grants: ids } }).catch(() => finish(true));
    });
  }

  revoked(ids: number[]): void {
    for (const id of ids) this.revoking.delete(id);
    for (const w of [...this.revokeWaiters]) w();
    if (this.revoking.size === 0) this.revokeWaiters = [];
  }
}

// ---------------------------------------------------------------- embedded

/** A grant in embedded mode: the server's backend, called directly. */
export interface EmbeddedFile {
  readonly id: number;
  readonly write: boolean;
  read(offset: number, count: number): Promise<ReadResult>;
  writeData(offset: number, pieces: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult>;
  commit(): Promise<CommitResult>;
}

export type EmbeddedOpen = { ok: true; file: EmbeddedFile } | { ok: false; status: number; reason: string };

/** What a server of this process offers a client of this process that probed it. */
export interface EmbeddedSession {
  readonly instance: Buffer;
  readonly verf: Buffer;
  open(fh: Buffer, write: boolean, ids: CallerIds): Promise<EmbeddedOpen>;
  /** The client closed these grants. */
  closeGrants(ids: readonly number[]): void;
  /** The client is done with the session. */
  end(): void;
  /** Called when the server revokes grants, or ends the session (stop, shutdown). */
  onRevoke(fn: (ids: number[]) => void): void;
  onEnd(fn: () => void): void;
}

/** Thrown by an embedded grant used after it was revoked (the client falls back to RPC). */
export class GrantRevokedError extends Error {
  override name = 'GrantRevokedError';
  readonly code = 'ELOCALIO_REVOKED';
  constructor() {
    super('LOCALIO grant revoked');
  }
}

class EmbeddedGrant implements EmbeddedFile {
  revoked = false;

  constructor(
    readonly id: number,
    readonly write: boolean,
    readonly exportId: number,
    private readonly backend: Backend,
    private readonly node: Buffer,
    private readonly cred: Cred,
    private readonly opts: ExportOptions,
    private readonly fsid: bigint | undefined,
    private readonly verf: Buffer,
    private readonly stats: ServerStats | undefined,
  ) {}

  private check(): void {
    if (this.revoked) throw new GrantRevokedError();
  }

  private fail(err: unknown, proc: string): never {
    if (err instanceof NfsStatusError || err instanceof GrantRevokedError) throw err;
    throw new NfsStatusError(nfsStatus(err, silentLogger, proc), proc);
  }

  async read(offset: number, count: number): Promise<ReadResult> {
    this.check();
    try {
      const r = await this.backend.read(this.cred, this.node, BigInt(offset), count);
      let data = r.data.length > count ? r.data.subarray(0, count) : r.data;
      if (r.release) {
        // Pooled memory goes back now: the client keeps what it reads.
        data = Buffer.from(data);
        r.release();
      }
      this.stats?.addBytesRead(data.length, 'localio');
      return { data, eof: r.eof && data.length === r.data.length, attrs: toFattr(r.attrs, this.fsid) };
    } catch (err) {
      this.fail(err, 'READ');
    }
  }

  async writeData(offset: number, pieces: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult> {
    this.check();
    if (!this.write) throw new NfsStatusError(nfsstat3.NFS3ERR_ROFS, 'WRITE');
    // The pieces are the client's cache pages: a backend that keeps what it
    // is given gets its own copy.
    const data = pieces.length === 1 && this.backend.copiesWriteData ? pieces[0]!.subarray(0, length) : Buffer.concat(pieces as Buffer[], length);
    try {
      const r = await this.backend.write(this.cred, this.node, BigInt(offset), data, this.opts.sync ? stable : 0);
      this.stats?.addBytesWritten(r.count, 'localio');
      return { count: Math.min(r.count, length), committed: r.committed as StableHow, verf: Buffer.from(this.verf), wcc: toWcc(r.wcc, this.fsid) };
    } catch (err) {
      this.fail(err, 'WRITE');
    }
  }

  async commit(): Promise<CommitResult> {
    this.check();
    if (!this.write) throw new NfsStatusError(nfsstat3.NFS3ERR_ROFS, 'COMMIT');
    try {
      if (!this.opts.sync) {
        const after = await this.backend.getattr(this.node);
        return { verf: Buffer.from(this.verf), wcc: { before: undefined, after: toFattr(after, this.fsid) } };
      }
      const w = await this.backend.commit(this.node, 0n, 0);
      return { verf: Buffer.from(this.verf), wcc: toWcc(w, this.fsid) };
    } catch (err) {
      this.fail(err, 'COMMIT');
    }
  }
}

class Embedded implements EmbeddedSession {
  readonly grants = new Map<number, EmbeddedGrant>();
  private revokeFns: ((ids: number[]) => void)[] = [];
  private endFns: (() => void)[] = [];
  ended = false;

  constructor(
    private readonly server: LocalioServer,
    readonly conn: RpcConnectionInfo,
    readonly instance: Buffer,
    readonly verf: Buffer,
  ) {}

  open(fh: Buffer, write: boolean, ids: CallerIds): Promise<EmbeddedOpen> {
    return this.server.openEmbedded(this, fh, write, ids);
  }

  closeGrants(ids: readonly number[]): void {
    for (const id of ids) this.grants.delete(id);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const g of this.grants.values()) g.revoked = true;
    this.grants.clear();
    this.server.forgetEmbedded(this);
  }

  onRevoke(fn: (ids: number[]) => void): void {
    this.revokeFns.push(fn);
  }

  onEnd(fn: () => void): void {
    this.endFns.push(fn);
  }

  revokeExport(exportId: number): number {
    const ids: number[] = [];
    for (const [id, g] of this.grants) {
      if (g.exportId !== exportId) continue;
      g.revoked = true;
      this.grants.delete(id);
      ids.push(id);
    }
    if (ids.length > 0) for (const fn of this.revokeFns) fn(ids);
    return ids.length;
  }

  /** The server stops: every grant is revoked and the client is told. */
  stop(): void {
    if (this.ended) return;
    this.end();
    for (const fn of this.endFns) fn();
  }
}

// ---------------------------------------------------------------- the server

export class LocalioServer {
  /** Random per server start: clients tell instances apart by it. */
  readonly instance = randomBytes(16);
  readonly registry: string;
  private readonly exportSet: ExportSet;
  private readonly verf: Buffer;
  private readonly log: Logger;
  private readonly serverStats: ServerStats | undefined;
  private readonly revokeTimeoutMs: number;
  private readonly channels = new Set<ServerChannel>();
  private readonly embedded = new Set<Embedded>();
  private nextGrant = 1;
  private closed = false;
  private readonly counters: LocalioServerCounters = {
    probes: 0,
    probesLocal: 0,
    probesInProcess: 0,
    probesNotFound: 0,
    probesFailed: 0,
    channelsOpened: 0,
    embeddedSessions: 0,
    grants: 0,
    grantsReadOnly: 0,
    grantsReadWrite: 0,
    refusals: {},
    peerCredRefusals: 0,
    revoked: 0,
    revokeTimeouts: 0,
  };

  constructor(opts: LocalioServerOptions) {
    this.exportSet = opts.exports;
    this.verf = Buffer.from(opts.writeVerifier);
    this.registry = opts.registry ?? defaultRegistryDir();
    this.log = opts.logger ?? silentLogger;
    this.serverStats = opts.stats;
    this.revokeTimeoutMs = opts.revokeTimeoutMs ?? 1000;
  }

  /** Program 400122 version 1, for RpcServer.register (not for the portmapper). */
  program(): ProgramVersion {
    return serveTable(LOCALIO_V1_TABLE, {
      NULL: () => undefined,
      UUID_IS_LOCAL: (uuid, ctx) => this.uuidIsLocal(Buffer.from(uuid), ctx.conn),
    });
  }

  stats(): LocalioServerStats {
    let grantsOpen = 0;
    for (const c of this.channels) grantsOpen += c.grants.size;
    for (const e of this.embedded) grantsOpen += e.grants.size;
    return {
      ...this.counters,
      refusals: { ...this.counters.refusals },
      fdPassing: fdPassingAvailable(),
      registry: this.registry,
      channels: this.channels.size,
      grantsOpen,
    };
  }

  /** Adds the LOCALIO metrics (tsnfs_localio_*) to a Prometheus registry. */
  trackMetrics(registry: Registry): void {
    const self = this;
    const registers = [registry];
    new Counter({
      name: 'tsnfs_localio_probes_total',
      help: 'UUID_IS_LOCAL calls by result',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const c = self.counters;
        this.labels('local').inc(c.probesLocal);
        this.labels('in_process').inc(c.probesInProcess);
        this.labels('not_found').inc(c.probesNotFound);
        this.labels('failed').inc(c.probesFailed);
      },
    });
    new Counter({
      name: 'tsnfs_localio_grants_total',
      help: 'LOCALIO grants given, by mode',
      labelNames: ['mode'],
      registers,
      collect() {
        this.reset();
        this.labels('ro').inc(self.counters.grantsReadOnly);
        this.labels('rw').inc(self.counters.grantsReadWrite);
      },
    });
    new Counter({
      name: 'tsnfs_localio_refusals_total',
      help: 'LOCALIO opens refused, by nfsstat3',
      labelNames: ['status'],
      registers,
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(self.counters.refusals)) this.labels(k).inc(v);
      },
    });
    new Counter({
      name: 'tsnfs_localio_revoked_total',
      help: 'LOCALIO grants revoked',
      registers,
      collect() {
        this.reset();
        this.inc(self.counters.revoked);
      },
    });
    new Gauge({
      name: 'tsnfs_localio_channels',
      help: 'LOCALIO channels and embedded sessions open',
      registers,
      collect() {
        this.set(self.channels.size + self.embedded.size);
      },
    });
    new Gauge({
      name: 'tsnfs_localio_grants_open',
      help: 'LOCALIO grants held by clients',
      registers,
      collect() {
        this.set(self.stats().grantsOpen);
      },
    });
  }

  /**
   * Revoke every grant of an export (it is being unexported); resolves once
   * the clients closed them, or were disconnected for not doing so in time.
   */
  async revokeExport(exportId: number): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const e of this.embedded) this.counters.revoked += e.revokeExport(exportId);
    for (const sc of this.channels) {
      const ids = [...sc.grants].filter(([, g]) => g.exportId === exportId).map(([id]) => id);
      if (ids.length === 0) continue;
      for (const id of ids) sc.grants.delete(id);
      this.counters.revoked += ids.length;
      waits.push(
        sc.revoke(ids, this.revokeTimeoutMs).then((ok) => {
          if (!ok) {
            this.counters.revokeTimeouts++;
            this.log.warn({ pid: sc.peer.pid, uid: sc.peer.uid, grants: ids.length }, 'LOCALIO client did not close revoked grants in time; closing its channel');
            sc.ch.close();
          }
        }),
      );
    }
    await Promise.all(waits);
  }

  /** Close every channel and end every embedded session (the server stops). */
  async close(): Promise<void> {
    this.closed = true;
    for (const sc of [...this.channels]) sc.ch.close();
    this.channels.clear();
    for (const e of [...this.embedded]) e.stop();
    this.embedded.clear();
  }

  // ---------------------------------------------------------- handshake

  private async uuidIsLocal(nonce: Buffer, conn: RpcConnectionInfo): Promise<void> {
    this.counters.probes++;
    if (this.closed) return;
    const mine = takeInProcess<EmbeddedSession>(nonce);
    if (mine) {
      const session = new Embedded(this, conn, this.instance, this.verf);
      this.embedded.add(session);
      this.counters.probesInProcess++;
      this.counters.embeddedSessions++;
      mine.offer(session);
      return;
    }
    if (!fdPassingAvailable()) {
      this.counters.probesNotFound++;
      return;
    }
    if (this.channels.size >= MAX_CHANNELS) {
      this.counters.probesFailed++;
      this.log.warn({ channels: this.channels.size }, 'LOCALIO: too many channels open; this client stays on RPC');
      return;
    }
    const sockPath = socketPathFor(this.registry, nonce);
    try {
      if (!statSync(sockPath).isSocket()) throw new Error('not a socket');
    } catch {
      this.counters.probesNotFound++;
      return;
    }
    let ch: FdChannel;
    try {
      ch = await FdChannel.connect(sockPath, { timeoutMs: 1000 });
    } catch (err) {
      this.counters.probesFailed++;
      this.log.debug({ err, path: sockPath }, 'LOCALIO: the client socket is there but cannot be reached');
      return;
    }
    try {
      ch.unref();
      const peer = ch.peerCred();
      const sc = new ServerChannel(ch, conn, peer);
      // The hello is in the client's socket before the reply leaves: a
      // client reading the reply can count on finding it.
      await sc.send({ type: chan_type.CHAN_HELLO, hello: { vers: LOCALIO_CHANNEL_VERSION, nonce, instance: this.instance, verf: this.verf } });
      if (this.closed) {
        ch.close();
        return;
      }
      this.adopt(sc);
      this.counters.probesLocal++;
      this.counters.channelsOpened++;
      this.log.debug({ pid: peer.pid, uid: peer.uid, client: conn.remoteAddress }, 'LOCALIO channel open');
    } catch (err) {
      this.counters.probesFailed++;
      this.log.debug({ err }, 'LOCALIO: hello failed');
      ch.close();
    }
  }

  private adopt(sc: ServerChannel): void {
    this.channels.add(sc);
    sc.ch.on('message', (msg) => this.onMessage(sc, msg));
    sc.ch.on('error', (err) => this.log.debug({ err }, 'LOCALIO channel error'));
    sc.ch.on('close', () => {
      this.channels.delete(sc);
      sc.grants.clear();
    });
  }

  private onMessage(sc: ServerChannel, msg: ReceivedMessage): void {
    let m: chan_msg;
    try {
      m = decodechan_msg(new XdrReader(msg.data));
    } catch (err) {
      this.log.warn({ err, pid: sc.peer.pid }, 'LOCALIO: malformed message; closing the channel');
      sc.ch.close();
      return;
    }
    switch (m.type) {
      case chan_type.CHAN_OPEN:
        // Backpressure: a client flooding OPENs waits in its socket.
        if (++sc.opening >= MAX_OPENS_IN_PROGRESS) sc.ch.pause();
        void this.openOnChannel(sc, m.open).finally(() => {
          if (sc.opening-- >= MAX_OPENS_IN_PROGRESS && !sc.ch.closed) sc.ch.resume();
        });
        return;
      case chan_type.CHAN_CLOSE:
        for (const id of m.close.grants) sc.grants.delete(id);
        return;
      case chan_type.CHAN_REVOKED:
        sc.revoked(m.revoked.grants);
        return;
      default:
        this.log.warn({ type: m.type, pid: sc.peer.pid }, 'LOCALIO: unexpected message from a client; closing the channel');
        sc.ch.close();
    }
  }

  // ---------------------------------------------------------- grants

  private refused(status: number): void {
    const name = STATUS_NAMES.get(status) ?? String(status);
    this.counters.refusals[name] = (this.counters.refusals[name] ?? 0) + 1;
  }

  /** The checks of the RPC path, for one open. */
  private decide(conn: RpcConnectionInfo, fh: Buffer, write: boolean, ids: CallerIds, sc?: ServerChannel): Decision | Refusal {
    const h = this.exportSet.handles.decodeHandle(fh);
    if (!h.ok) return refuse(h.error === 'stale' ? nfsstat3.NFS3ERR_STALE : nfsstat3.NFS3ERR_BADHANDLE, 'bad file handle');
    const exp = this.exportSet.byId(h.exportId);
    if (!exp) return refuse(nfsstat3.NFS3ERR_STALE, 'export gone');
    const a = this.exportSet.access(exp, conn);
    if (!a.ok) return refuse(a.reason === 'insecure' ? nfsstat3.NFS3ERR_PERM : nfsstat3.NFS3ERR_ACCES, `export rules: ${a.reason}`);
    if (write && !a.options.rw) return refuse(nfsstat3.NFS3ERR_ROFS, 'read-only export');
    let claimed = ids;
    if (sc && sc.peer.uid !== 0) {
      if (ids.uid !== sc.peer.uid) {
        this.counters.peerCredRefusals++;
        return refuse(nfsstat3.NFS3ERR_PERM, `uid ${ids.uid} claimed by a process of uid ${sc.peer.uid}`);
      }
      const groups = sc.peerGroups();
      if (!groups.has(ids.gid)) {
        this.counters.peerCredRefusals++;
        return refuse(nfsstat3.NFS3ERR_PERM, `gid ${ids.gid} claimed by a process not in that group`);
      }
      claimed = { uid: ids.uid, gid: ids.gid, gids: ids.gids.filter((g) => groups.has(g)) };
    }
    return { ok: true, exp, node: Buffer.from(h.nodeId), opts: a.options, fsid: a.fsid, cred: mapCred(a.options, claimed) };
  }

  private async openOnChannel(sc: ServerChannel, o: chan_open): Promise<void> {
    const answer = (status: number, reason: string): Promise<void> => {
      this.refused(status);
      return sc.send({ type: chan_type.CHAN_REFUSE, refuse: { req: o.req, status, reason: reason.slice(0, 255) } }).catch(() => undefined);
    };
    const d = this.decide(sc.conn, o.fh, o.write, { uid: o.uid, gid: o.gid, gids: o.gids }, sc);
    if (!d.ok) return answer(d.status, d.reason);
    if (sc.grants.size >= MAX_GRANTS_PER_CHANNEL) return answer(nfsstat3.NFS3ERR_JUKEBOX, 'too many grants held');
    const backend = d.exp.backend;
    if (!backend.open) return answer(nfsstat3.NFS3ERR_NOTSUPP, 'this export has no files to grant');
    let fh;
    try {
      fh = await backend.open(d.cred, d.node, o.write);
    } catch (err) {
      return answer(nfsStatus(err, this.log, 'LOCALIO OPEN'), (err as Error).message ?? 'open failed');
    }
    try {
      // Unexported or closed while the file was opened: no grant.
      if (sc.ch.closed || this.closed) return;
      if (this.exportSet.byId(d.exp.id) !== d.exp) return await answer(nfsstat3.NFS3ERR_STALE, 'export gone');
      const id = this.nextGrant++;
      sc.grants.set(id, { exportId: d.exp.id, write: o.write });
      try {
        await sc.send({ type: chan_type.CHAN_GRANT, grant: { req: o.req, grant: id, write: o.write, sync: d.opts.sync, fsid: d.fsid } }, [fh.fd]);
      } catch {
        sc.grants.delete(id);
        return;
      }
      this.counters.grants++;
      if (o.write) this.counters.grantsReadWrite++;
      else this.counters.grantsReadOnly++;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** @internal Embedded open (Embedded.open). */
  async openEmbedded(session: Embedded, fh: Buffer, write: boolean, ids: CallerIds): Promise<EmbeddedOpen> {
    const fail = (status: number, reason: string): EmbeddedOpen => {
      this.refused(status);
      return { ok: false, status, reason };
    };
    if (session.ended || this.closed) return fail(nfsstat3.NFS3ERR_STALE, 'session ended');
    const d = this.decide(session.conn, fh, write, ids);
    if (!d.ok) return fail(d.status, d.reason);
    const backend = d.exp.backend;
    try {
      const attrs = await backend.getattr(d.node);
      if (attrs.type !== FileType.REG) return fail(attrs.type === FileType.DIR ? nfsstat3.NFS3ERR_ISDIR : nfsstat3.NFS3ERR_INVAL, 'not a regular file');
      const want = Access.READ | (write ? Access.MODIFY : 0);
      const { granted } = await backend.access(d.cred, d.node, want);
      if ((granted & want) !== want) return fail(nfsstat3.NFS3ERR_ACCES, 'permission denied');
    } catch (err) {
      return fail(nfsStatus(err, this.log, 'LOCALIO OPEN'), (err as Error).message ?? 'open failed');
    }
    if (session.ended || this.exportSet.byId(d.exp.id) !== d.exp) return fail(nfsstat3.NFS3ERR_STALE, 'export gone');
    const id = this.nextGrant++;
    const g = new EmbeddedGrant(id, write, d.exp.id, backend, d.node, d.cred, d.opts, d.fsid, this.verf, this.serverStats);
    session.grants.set(id, g);
    this.counters.grants++;
    if (write) this.counters.grantsReadWrite++;
    else this.counters.grantsReadOnly++;
    return { ok: true, file: g };
  }

  /** @internal */
  forgetEmbedded(session: Embedded): void {
    this.embedded.delete(session);
  }
}

