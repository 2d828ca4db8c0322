// The client side of LOCALIO: proving that the server is on this host,
// the channel and its grants, and LocalioTransport, the DataTransport that
// reads, writes and commits through granted descriptors.
//
// Probing (one at a time, in the background; mounting never waits):
//   1. A fresh random UUID, the nonce. It is registered in the in-process
//      registry, and, when descriptors can be passed, a socket listens at
//      <registry>/<uuid>.sock (mode 0600, or 0660 in a group-shared
//      registry).
//   2. UUID_IS_LOCAL(uuid) on the NFS connection. PROG_UNAVAIL (a server
//      without LOCALIO, nfs-ganesha) or any other failure: remote, silently.
//   3. After the reply, a few event-loop turns (at least 20 ms) for the
//      server's connection: the server sends its HELLO before it replies, so
//      a local server's HELLO is already in the socket. Only a connection
//      whose HELLO carries this nonce counts; the reply alone proves
//      nothing. A server of this process answers through the in-process
//      registry instead (embedded mode).
//   4. The socket file is removed and other connections closed: the nonce is
//      used once.
// Probes run after connect, after every reconnect of the NFS connection, and
// when the channel is lost (server stopped, restarted, crashed); never while
// local. The first data operation waits (at most `waitMs`, 1 s) for the
// first probe, so that a one-shot command goes local; localioReady() waits
// the same way on demand.
//
// Grants: per file, one read-only and one read-write, asked for on the
// file's first read (read-only, unless a read-write one is there) or first
// write or commit (read-write), and closed when the client drops the file
// (no open handle, nothing cached) or when the server revokes them. A
// refusal (permissions, read-only export, squashed uid) is remembered for
// the file, whose IO then goes over RPC, where the server answers it as it
// answers any client. At most `maxGrants` descriptors are held; past that,
// idle grants are closed, least recently used first.
//
// IO on a grant goes through the LocalioEngine (engine.ts): per direction
// buffered, dontcache or direct (a second grant of the file, with O_DIRECT),
// with stable_how kept (UNSTABLE: nothing more; DATA_SYNC and FILE_SYNC are
// durable before answering; an `async` export makes every write UNSTABLE and
// COMMIT sync nothing, as over RPC); COMMIT is fsync. WRITE and COMMIT answer with wcc data from fstat
// before and after, as the server's own attributes (the grant carries the
// export's fsid= option), and with the write verifier of the server's HELLO,
// so the write-back cache checks commits as over RPC.
//
// Interlock: a grant counts the IO in flight on it. When the channel closes
// or REVOKE arrives, the grants are marked revoked: new IO goes over RPC,
// IO in flight finishes on the descriptor (it was the server's file, and a
// descriptor outlives its server), and the descriptor is closed when the
// last one completes; REVOKED then tells the server. An IO that fails
// because its grant went away meanwhile is sent again over RPC. An UNSTABLE
// write done locally carries the old instance's verifier: after a restart
// the COMMIT (over RPC, or local again) answers another one and the
// write-back cache sends the data again, so nothing acknowledged by a
// commit is lost and nothing is applied twice out of order.

import fs, { type BigIntStats } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { FdChannel, FdListener, fdPassingAvailable, isODirect, nativeStatus, setODirect, type ReceivedMessage } from '../native/index.js';
import { LOCALIO_PROGRAM, LOCALIO_V1, LOCALIOPROC, encodeuuid_t } from '../proto/localio.gen.js';
import { decodeVoid } from '../proto/runtime.js';
import { stable_how, type fattr3, type nfs_fh3 } from '../proto/nfs3.gen.js';
import { RpcProcUnavailError, RpcProgMismatchError, RpcProgUnavailError, type RpcClient } from '../rpc/index.js';
import { XdrReader, XdrWriter } from '../xdr/index.js';
import { FsError } from '../fs/backend.js';
import { statToAttrs } from '../fs/attrs.js';
import { type Logger, silentLogger } from '../log.js';
import type { CallerIds } from '../server/exports.js';
import { nfsStatus, toFattr } from '../server/nfs3.js';
import { NfsStatusError } from '../client/errors.js';
import type { CommitResult, DataTransport, ReadResult, StableHow, WriteResult } from '../client/transport.js';
import { chan_type, decodechan_msg, encodechan_msg, LOCALIO_CHANNEL_VERSION, type chan_grant, type chan_hello, type chan_msg } from './channel.gen.js';
import { sharedLocalIo, type LocalIo, type SyncKind } from './io.js';
import { GrantedFile, idleEngineStats, LocalioEngine, DEFAULT_READ_MODE, DEFAULT_WRITE_MODE, type CacheMode, type DirectDescriptor, type LocalioEngineStats } from './engine.js';
import type { DirtyAccountant } from '../client/dirty.js';
import { defaultRegistryDir, prepareRegistryDir, randomUuid, registerInProcess, socketPathFor, sweepStaleSockets } from './registry.js';
import type { EmbeddedFile, EmbeddedSession } from './server.js';

export type LocalioState = 'off' | 'remote' | 'probing' | 'local';

/** The `localio` object of a client's stats(). */
export interface LocalioClientStats {
  /** The `localio` option (false: never probed). */
  enabled: boolean;
  /** Descriptor passing (the native addon): needed for a server in another process. */
  fdPassing: boolean;
  /** Why LOCALIO cannot reach a server in another process, when it cannot. */
  reason?: string;
  state: LocalioState;
  /** 'channel': a server in another process; 'embedded': one in this process. */
  mode?: 'channel' | 'embedded';
  registry: string;
  probes: number;
  probeSuccesses: number;
  /** Servers without LOCALIO (PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL). */
  probeUnsupported: number;
  /** Probes that got no answer (timeouts, lost connections). */
  probeFailures: number;
  /** Channels or embedded sessions that ended under the client. */
  sessionsLost: number;
  grants: number;
  grantRefusals: number;
  grantsOpen: number;
  revoked: number;
  /** Operations and bytes that went through grants (not RPC). */
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  commits: number;
  /** Operations LocalioTransport sent over RPC (no grant, refused, revoked, or not local yet). */
  fallbacks: number;
  /** How reads and writes on descriptors used the page cache (cache modes, alignment, bounce buffers), and the dirty limit. */
  io: LocalioIoStats;
}

/** The engine's counters and the writers' waits at the client's dirty limit. */
export interface LocalioIoStats extends LocalioEngineStats {
  /** Application writes that waited at the dirty limit, and how long in all (ms); writeback never waits there. */
  dirtyWaits: number;
  dirtyWaitMs: number;
  dirtyBytes: number;
  dirtyLimit: number;
}

export interface LocalioClientOptions {
  /** The NFS connection (probes go on it). */
  rpc: RpcClient;
  /** Where IO goes without a grant. */
  fallback: DataTransport;
  /** The client's AUTH_SYS identity (what OPEN claims). */
  ids: CallerIds;
  /** false: never probe (stats say 'off'). Default true. */
  enabled?: boolean;
  registry?: string;
  logger?: Logger;
  /** IO path for granted descriptors (default: sharedLocalIo()). */
  io?: LocalIo;
  /** Cache modes of reads and writes on descriptors (default: DEFAULT_READ_MODE, DEFAULT_WRITE_MODE). */
  readMode?: CacheMode;
  writeMode?: CacheMode;
  /** Bytes of aligned bounce buffers for direct mode, made when the channel starts (at least one max-size IO). */
  bufferPoolBytes?: number;
  /** The largest read or write the client makes (rsize, wsize), which sizes the bounce buffers. */
  maxIoBytes?: number;
  /** The client's dirty-memory accountant (for the stats). */
  dirty?: DirtyAccountant;
  /** Descriptors held at most (default 512). */
  maxGrants?: number;
  /** How long the first data operation waits for the first probe (default 1000 ms). */
  waitMs?: number;
  /** Limit for one UUID_IS_LOCAL call (default 10 s). */
  probeTimeoutMs?: number;
}

/** File systems whose fstat is answered from memory (done synchronously, as LocalBackend does). */
const MEMORY_FSTAT_FS = new Set<number>([0xef53, 0x58465342, 0x9123683e, 0x01021994]);

function keyOf(fh: nfs_fh3): string {
  return fh.data.toString('latin1');
}

function encodeMsg(m: chan_msg): Buffer {
  const w = new XdrWriter(128);
  encodechan_msg(w, m);
  return w.toBuffer();
}

/** An errno from local IO as the NFS status the server would have answered. */
export function localIoError(err: unknown, proc: string): NfsStatusError {
  if (err instanceof NfsStatusError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return new NfsStatusError(nfsStatus(new FsError(typeof code === 'string' ? code : 'EIO')), proc);
}

function wccBeforeOf(a: fattr3): { size: bigint; mtime: fattr3['mtime']; ctime: fattr3['ctime'] } {
  return { size: a.size, mtime: a.mtime, ctime: a.ctime };
}

// ---------------------------------------------------------------- grants

interface Refused {
  refused: true;
  status: number;
  reason: string;
}

/** A grant as the transport uses it: counted IO, then revoke/close. */
abstract class Grant {
  /** Writes land in the page cache of the server's host (see WriteResult.hostCached). */
  readonly hostCached: boolean = false;
  inflight = 0;
  revoked = false;
  closed = false;
  lastUsed = 0;
  /** The file's grants this one is cached in. */
  file: FileGrants | undefined;
  /** The file's handle (to ask for a second descriptor of it). */
  fh: nfs_fh3 | undefined;

  constructor(
    readonly id: number,
    readonly write: boolean,
    protected readonly owner: Session,
  ) {}

  acquire(): boolean {
    if (this.revoked || this.closed) return false;
    this.inflight++;
    return true;
  }

  release(): void {
    this.inflight--;
    this.lastUsed = Date.now();
    if (this.revoked && this.inflight === 0) this.finish();
  }

  /** No new IO; closed once the IO in flight is done. */
  revoke(): void {
    if (this.revoked) return;
    this.revoked = true;
    if (this.inflight === 0) this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.dispose();
    this.owner.grantClosed(this);
  }

  protected abstract dispose(): void;
  abstract read(offset: number, count: number): Promise<ReadResult>;
  /** Reads into `buf` at `off`; fewer bytes than `len` only at the end of the file. */
  abstract readInto(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  /** readInto done at once when the page cache has it all; undefined otherwise (use readInto). */
  abstract readCached(buf: Buffer, off: number, len: number, pos: number): number | undefined;
  abstract writeData(offset: number, pieces: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult>;
  abstract commit(): Promise<CommitResult>;
}

/** A descriptor the server passed. */
class FdGrant extends Grant {
  override readonly hostCached = true;
  private readonly fastStat: boolean;
  /** What the engine learns about this descriptor (alignment, dontcache, direct). */
  private readonly gf: GrantedFile;
  /** A second grant of the file with O_DIRECT (direct mode), asked for on first use. */
  private twin: Promise<FdGrant | undefined> | undefined;
  /** O_DIRECT is off on `fd`, as it came from the server, and this client never turns it on (twins aside). */
  private buffered: boolean;

  constructor(
    id: number,
    write: boolean,
    owner: Session,
    readonly fd: number,
    private readonly sync: boolean,
    private readonly fsid: bigint | undefined,
    private readonly engine: LocalioEngine,
    private readonly verf: Buffer,
  ) {
    super(id, write, owner);
    this.gf = new GrantedFile(fd, () => this.directDescriptor());
    let fast = false;
    try {
      fast = MEMORY_FSTAT_FS.has(Number(fs.statfsSync(`/proc/self/fd/${fd}`).type));
    } catch {
      fast = false;
    }
    this.fastStat = fast;
    try {
      this.buffered = isODirect(fd) === false;
    } catch {
      this.buffered = false;
    }
  }

  /** @internal This grant is an O_DIRECT twin: its descriptor's reads must check. */
  markDirect(): void {
    this.buffered = false;
  }

  protected dispose(): void {
    // Closed before the server hears of it (grantClosed): a revoke is
    // answered only once no descriptor of the file is left open here. A
    // close of a local file's descriptor does not wait on the device.
    try {
      fs.closeSync(this.fd);
    } catch {
      // already gone: nothing to release
    }
    // IO on the twin runs inside IO on this grant: none is in flight now.
    void this.twin?.then((t) => t?.revoke());
  }

  /** The O_DIRECT twin, acquired for one IO; asked for again if the server revoked it. */
  private async directDescriptor(): Promise<DirectDescriptor | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      this.twin ??= this.owner.client.openTwin(this);
      const t = await this.twin;
      if (!t) return undefined;
      if (t.acquire()) return { fd: t.fd, release: () => t.release() };
      if (this.revoked) return undefined;
      this.twin = undefined;
    }
    return undefined;
  }

  private async attrs(): Promise<fattr3> {
    const st: BigIntStats = this.fastStat
      ? fs.fstatSync(this.fd, { bigint: true })
      : await new Promise<BigIntStats>((resolve, reject) => fs.fstat(this.fd, { bigint: true }, (err, s) => (err ? reject(err) : resolve(s))));
    return toFattr(statToAttrs(st), this.fsid);
  }

  async read(offset: number, count: number): Promise<ReadResult> {
    const buf = Buffer.allocUnsafe(count);
    const n = await this.engine.read(this.gf, buf, 0, count, offset);
    return { data: n === count ? buf : buf.subarray(0, n), eof: n < count };
  }

  readInto(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return this.engine.read(this.gf, buf, off, len, pos, this.buffered);
  }

  readCached(buf: Buffer, off: number, len: number, pos: number): number | undefined {
    return this.buffered ? this.engine.readCached(this.gf, buf, off, len, pos) : undefined;
  }

  async writeData(offset: number, pieces: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult> {
    // An `async` export: every write is UNSTABLE, as the server makes them.
    const committed: StableHow = this.sync ? stable : stable_how.UNSTABLE;
    const kind: SyncKind = committed === stable_how.FILE_SYNC ? 'file' : committed === stable_how.DATA_SYNC ? 'data' : 'none';
    const before = await this.attrs();
    let count: number;
    let got: StableHow = committed;
    try {
      count = await this.engine.write(this.gf, length === totalLength(pieces) ? pieces : trimPieces(pieces, length), length, offset, kind);
    } catch (err) {
      const done = (err as { bytesDone?: number }).bytesDone ?? 0;
      if (done <= 0) throw err;
      // A short write: what landed is reported (not synced), the rest is sent again.
      count = done;
      got = stable_how.UNSTABLE;
    }
    const after = await this.attrs();
    return { count, committed: got, verf: Buffer.from(this.verf), wcc: { before: wccBeforeOf(before), after }, hostCached: true };
  }

  async commit(): Promise<CommitResult> {
    const before = await this.attrs();
    if (this.sync) await this.engine.sync(this.fd);
    const after = await this.attrs();
    return { verf: Buffer.from(this.verf), wcc: { before: wccBeforeOf(before), after } };
  }
}

function totalLength(pieces: readonly Buffer[]): number {
  let n = 0;
  for (const p of pieces) n += p.length;
  return n;
}

function trimPieces(pieces: readonly Buffer[], length: number): Buffer[] {
  const out: Buffer[] = [];
  let left = length;
  for (const p of pieces) {
    if (left <= 0) break;
    out.push(p.length <= left ? p : p.subarray(0, left));
    left -= p.length;
  }
  return out;
}

/** A grant of a server in this process: its backend, called directly. */
class EmbeddedGrant extends Grant {
  constructor(
    owner: Session,
    private readonly ef: EmbeddedFile,
  ) {
    super(ef.id, ef.write, owner);
  }

  protected dispose(): void {}

  read(offset: number, count: number): Promise<ReadResult> {
    return this.ef.read(offset, count);
  }

  async readInto(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    const r = await this.ef.read(pos, len);
    return r.data.copy(buf, off, 0, Math.min(len, r.data.length));
  }

  readCached(): undefined {
    return undefined;
  }

  writeData(offset: number, pieces: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult> {
    return this.ef.writeData(offset, pieces, length, stable);
  }

  commit(): Promise<CommitResult> {
    return this.ef.commit();
  }
}

// ---------------------------------------------------------------- sessions

/** One proven connection to the server: a channel, or an embedded session. */
abstract class Session {
  readonly grants = new Map<number, Grant>();
  ended = false;
  /** Revoked grants not yet closed, for REVOKED. */
  private revoking = new Set<number>();

  constructor(
    readonly mode: 'channel' | 'embedded',
    readonly verf: Buffer,
    readonly client: LocalioClient,
  ) {}

  abstract open(fh: nfs_fh3, write: boolean): Promise<Grant | Refused | undefined>;
  protected abstract sendClosed(ids: number[], revoked: boolean): void;
  protected abstract shutdown(): void;

  /** The server revoked these grants. */
  revokeIds(ids: readonly number[]): void {
    for (const id of ids) {
      const g = this.grants.get(id);
      if (!g) {
        this.sendClosed([id], true);
        continue;
      }
      this.revoking.add(id);
      this.client.forgetGrant(g);
      this.client.counters.revoked++;
      g.revoke();
    }
  }

  /** @internal A grant's descriptor is closed. */
  grantClosed(g: Grant): void {
    this.grants.delete(g.id);
    this.client.grantClosed(g);
    if (this.ended) return;
    const wasRevoked = this.revoking.delete(g.id);
    this.sendClosed([g.id], wasRevoked);
  }

  /** The session is over (server gone, or the client closes). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const g of [...this.grants.values()]) g.revoke();
    this.shutdown();
  }
}

class ChannelSession extends Session {
  private nextReq = 1;
  private readonly waiting = new Map<number, (r: Grant | Refused | undefined) => void>();

  constructor(
    private readonly ch: FdChannel,
    hello: chan_hello,
    client: LocalioClient,
    private readonly engine: LocalioEngine,
  ) {
    super('channel', Buffer.from(hello.verf), client);
    ch.on('message', (msg) => this.onMessage(msg));
    ch.on('error', () => undefined);
    ch.on('close', () => {
      const all = [...this.waiting.values()];
      this.waiting.clear();
      for (const w of all) w(undefined);
      if (!this.ended) {
        this.end();
        client.sessionLost(this);
      }
    });
  }

  open(fh: nfs_fh3, write: boolean): Promise<Grant | Refused | undefined> {
    if (this.ended) return Promise.resolve(undefined);
    const req = this.nextReq++;
    const ids = this.client.ids;
    return new Promise((resolve) => {
      // The channel is unref'd while idle; an answer we wait for keeps the process alive.
      if (this.waiting.size === 0) this.ch.ref();
      this.waiting.set(req, (r) => {
        if (this.waiting.size === 0 && !this.ch.closed) this.ch.unref();
        resolve(r);
      });
      this.ch
        .send(encodeMsg({ type: chan_type.CHAN_OPEN, open: { req, fh: fh.data, write, uid: ids.uid, gid: ids.gid, gids: [...ids.gids] } }))
        .catch(() => {
          const w = this.waiting.get(req);
          this.waiting.delete(req);
          w?.(undefined);
        });
    });
  }

  private onMessage(msg: ReceivedMessage): void {
    let m: chan_msg;
    try {
      m = decodechan_msg(new XdrReader(msg.data));
    } catch {
      this.ch.close();
      return;
    }
    switch (m.type) {
      case chan_type.CHAN_GRANT:
        this.onGrant(m.grant, msg.takeFds());
        return;
      case chan_type.CHAN_REFUSE: {
        const w = this.waiting.get(m.refuse.req);
        this.waiting.delete(m.refuse.req);
        w?.({ refused: true, status: m.refuse.status, reason: m.refuse.reason });
        return;
      }
      case chan_type.CHAN_REVOKE:
        this.revokeIds(m.revoke.grants);
        return;
      default:
        // A HELLO again, or a client's message: not from a well-behaved server.
        this.ch.close();
    }
  }

  private onGrant(gr: chan_grant, fds: number[]): void {
    const w = this.waiting.get(gr.req);
    this.waiting.delete(gr.req);
    const fd = fds[0];
    for (const extra of fds.slice(1)) fs.close(extra, () => undefined);
    if (fd === undefined || !w || this.ended) {
      if (fd !== undefined) fs.close(fd, () => undefined);
      // Tell the server this grant is not held.
      this.sendClosed([gr.grant], false);
      w?.(undefined);
      return;
    }
    const g = new FdGrant(gr.grant, gr.write, this, fd, gr.sync, gr.fsid, this.engine, this.verf);
    this.grants.set(g.id, g);
    w(g);
  }

  protected sendClosed(ids: number[], revoked: boolean): void {
    if (this.ch.closed) return;
    const m: chan_msg = revoked ? { type: chan_type.CHAN_REVOKED, revoked: { grants: ids } } : { type: chan_type.CHAN_CLOSE, close: { grants: ids } };
    this.ch.send(encodeMsg(m)).catch(() => undefined);
  }

  protected shutdown(): void {
    this.ch.close();
  }
}

class EmbeddedClientSession extends Session {
  constructor(
    private readonly s: EmbeddedSession,
    client: LocalioClient,
  ) {
    super('embedded', Buffer.from(s.verf), client);
    s.onRevoke((ids) => this.revokeIds(ids));
    s.onEnd(() => {
      if (this.ended) return;
      this.end();
      client.sessionLost(this);
    });
  }

  async open(fh: nfs_fh3, write: boolean): Promise<Grant | Refused | undefined> {
    if (this.ended) return undefined;
    const r = await this.s.open(fh.data, write, this.client.ids);
    if (!r.ok) return { refused: true, status: r.status, reason: r.reason };
    if (this.ended) {
      this.s.closeGrants([r.file.id]);
      return undefined;
    }
    const g = new EmbeddedGrant(this, r.file);
    this.grants.set(g.id, g);
    return g;
  }

  protected sendClosed(ids: number[]): void {
    this.s.closeGrants(ids);
  }

  protected shutdown(): void {
    this.s.end();
  }
}

// ---------------------------------------------------------------- per file

interface FileGrants {
  readonly key: string;
  ro?: Grant;
  rw?: Grant;
  roPending?: Promise<Grant | undefined>;
  rwPending?: Promise<Grant | undefined>;
  /** Refusals (nfsstat3) for this file, until the client drops it. */
  roRefused?: number;
  rwRefused?: number;
  /** The session these belong to. */
  session: Session;
  /** The client dropped the file: grants that arrive now are closed at once. */
  released?: boolean;
}

// ---------------------------------------------------------------- the client

export class LocalioClient {
  readonly ids: CallerIds;
  readonly registry: string;
  readonly transport: LocalioTransport;
  /** @internal */
  readonly counters = {
    probes: 0,
    probeSuccesses: 0,
    probeUnsupported: 0,
    probeFailures: 0,
    sessionsLost: 0,
    grants: 0,
    grantRefusals: 0,
    revoked: 0,
    reads: 0,
    readBytes: 0,
    writes: 0,
    writeBytes: 0,
    commits: 0,
    fallbacks: 0,
  };

  private readonly rpc: RpcClient;
  private readonly enabled: boolean;
  private readonly log: Logger;
  private readonly io: LocalIo | undefined;
  private readonly readMode: CacheMode;
  private readonly writeMode: CacheMode;
  private readonly bufferPoolBytes: number | undefined;
  private readonly maxIoBytes: number | undefined;
  private readonly dirty: DirtyAccountant | undefined;
  /** Made with the first channel (its bounce buffers are reserved then). */
  private engine: LocalioEngine | undefined;
  private readonly maxGrants: number;
  private readonly waitMs: number;
  private readonly probeTimeoutMs: number;
  private state: LocalioState;
  private session: Session | undefined;
  private mode: 'channel' | 'embedded' | undefined;
  private probing: Promise<boolean> | undefined;
  private firstProbe = true;
  private closed = false;
  private files = new Map<string, FileGrants>();
  private byFh = new WeakMap<nfs_fh3, FileGrants>();
  private grantsOpen = 0;
  private readonly onReconnect = (): void => this.probe();
  private retryTimer: NodeJS.Timeout | undefined;
  private sessionStart = 0;
  private lostInRow = -1;

  constructor(opts: LocalioClientOptions) {
    this.rpc = opts.rpc;
    this.ids = { uid: opts.ids.uid, gid: opts.ids.gid, gids: [...opts.ids.gids] };
    this.enabled = opts.enabled ?? true;
    this.registry = opts.registry ?? defaultRegistryDir();
    this.log = opts.logger ?? silentLogger;
    this.io = opts.io;
    this.readMode = opts.readMode ?? DEFAULT_READ_MODE;
    this.writeMode = opts.writeMode ?? DEFAULT_WRITE_MODE;
    this.bufferPoolBytes = opts.bufferPoolBytes;
    this.maxIoBytes = opts.maxIoBytes;
    this.dirty = opts.dirty;
    this.maxGrants = opts.maxGrants ?? 512;
    this.waitMs = opts.waitMs ?? 1000;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? 10_000;
    this.state = this.enabled ? 'remote' : 'off';
    this.transport = new LocalioTransport(this, opts.fallback);
    if (this.enabled) this.rpc.on('reconnect', this.onReconnect);
  }

  /** Starts the first probe (in the background). */
  start(): void {
    this.probe();
  }

  get localState(): LocalioState {
    return this.state;
  }

  /** The transport for a file: LOCALIO while local (or while the first probe runs), else undefined (RPC). */
  transportFor(_fh: nfs_fh3): DataTransport | undefined {
    if (this.state === 'local' || (this.state === 'probing' && this.firstProbe)) return this.transport;
    return undefined;
  }

  /**
   * Resolves true once the server is known local; false when a probe under
   * way does not finish within `timeoutMs`, or the server is not local.
   */
  async ready(timeoutMs = this.waitMs): Promise<boolean> {
    const p = this.probing;
    if (p && timeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    return this.state === 'local';
  }

  /** Probe now, unless a probe is under way, the server is local, or LOCALIO is off. */
  probe(): void {
    if (!this.enabled || this.closed || this.probing || this.state === 'local') return;
    this.state = 'probing';
    const p = this.runProbe()
      .catch((err: unknown) => {
        this.log.debug({ err }, 'LOCALIO probe failed');
        return false;
      })
      .then((local) => {
        if (this.probing === p) this.probing = undefined;
        this.firstProbe = false;
        if (!local && this.state === 'probing') this.state = 'remote';
        return local;
      });
    this.probing = p;
  }

  private async runProbe(): Promise<boolean> {
    this.counters.probes++;
    const nonce = randomUuid();
    let chosen: Session | undefined;
    let settled = false;
    const candidates = new Set<FdChannel>();
    let helloArrived: (() => void) | undefined;
    const adopt = (s: Session): void => {
      if (settled || chosen) {
        s.end();
        return;
      }
      chosen = s;
      helloArrived?.();
    };

    const unregister = registerInProcess<EmbeddedSession>(nonce, { offer: (es) => adopt(new EmbeddedClientSession(es, this)) });
    let listener: FdListener | undefined;
    if (fdPassingAvailable()) {
      const reg = prepareRegistryDir(this.registry);
      if (reg.ok) {
        sweepStaleSockets(reg.dir);
        try {
          listener = FdListener.listen(socketPathFor(reg.dir, nonce), { mode: reg.socketMode });
          listener.unref();
          listener.on('error', () => undefined);
          listener.on('connection', (ch) => {
            ch.unref();
            if (settled || chosen) {
              ch.close();
              return;
            }
            candidates.add(ch);
            const onFirst = (msg: ReceivedMessage): void => {
              candidates.delete(ch);
              let m: chan_msg | undefined;
              try {
                m = decodechan_msg(new XdrReader(msg.data));
              } catch {
                m = undefined;
              }
              if (!m || m.type !== chan_type.CHAN_HELLO || m.hello.vers !== LOCALIO_CHANNEL_VERSION || !m.hello.nonce.equals(nonce) || settled || chosen) {
                ch.close();
                return;
              }
              adopt(new ChannelSession(ch, m.hello, this, this.ioEngine()));
            };
            ch.once('message', onFirst);
            ch.once('close', () => candidates.delete(ch));
          });
        } catch (err) {
          this.log.debug({ err, registry: reg.dir }, 'LOCALIO: cannot listen in the registry');
        }
      } else {
        this.log.debug({ registry: reg.dir, reason: reg.reason }, 'LOCALIO: registry unusable');
      }
    }

    try {
      let answered = false;
      try {
        await this.rpc.call(LOCALIOPROC.UUID_IS_LOCAL, (w) => encodeuuid_t(w, nonce), decodeVoid, { prog: LOCALIO_PROGRAM, vers: LOCALIO_V1, timeoutMs: this.probeTimeoutMs });
        answered = true;
      } catch (err) {
        if (err instanceof RpcProgUnavailError || err instanceof RpcProgMismatchError || err instanceof RpcProcUnavailError) this.counters.probeUnsupported++;
        else this.counters.probeFailures++;
        this.log.debug({ err }, 'LOCALIO: UUID_IS_LOCAL failed; staying on RPC');
      }
      if (answered && !chosen && listener) {
        // The HELLO is in our socket already if the server is local: give
        // the event loop a few turns to accept the connection and read it.
        const start = Date.now();
        const arrived = new Promise<void>((r) => (helloArrived = r));
        for (let turns = 0; !chosen && (turns < 4 || Date.now() - start < 20) && Date.now() - start < 1000; turns++) {
          await Promise.race([arrived, sleep(2)]);
        }
      }
    } finally {
      settled = true;
      unregister();
      listener?.close();
      for (const ch of candidates) ch.close();
      candidates.clear();
    }

    if (!chosen) return false;
    const s: Session = chosen;
    if (this.closed || s.ended) {
      // Closed, or the channel died as it was made: try again shortly.
      s.end();
      if (!this.closed) this.retryLater();
      return false;
    }
    this.session = s;
    this.sessionStart = Date.now();
    this.mode = s.mode;
    this.state = 'local';
    this.counters.probeSuccesses++;
    this.log.debug({ mode: s.mode }, 'LOCALIO: the server is local');
    return true;
  }

  /** The engine of descriptor IO, made on first use (with its reserved buffers). */
  private ioEngine(): LocalioEngine {
    this.engine ??= new LocalioEngine({
      io: this.io ?? sharedLocalIo(),
      readMode: this.readMode,
      writeMode: this.writeMode,
      maxIoBytes: this.maxIoBytes,
      poolBytes: this.bufferPoolBytes,
    });
    return this.engine;
  }

  /**
   * @internal A second grant of `g`'s file with O_DIRECT on its (own) open
   * file description, for direct IO; undefined when it cannot be had (the
   * server refuses, the file system refuses O_DIRECT, or `g` went away).
   */
  async openTwin(g: Grant): Promise<FdGrant | undefined> {
    const s = this.session;
    if (!s || s.ended || g.revoked || !g.fh) return undefined;
    if (this.grantsOpen >= this.maxGrants) this.closeIdleGrants();
    const r = await s.open({ data: Buffer.from(g.fh.data) }, g.write);
    if (!r) return undefined;
    if ('refused' in r) {
      this.counters.grantRefusals++;
      return undefined;
    }
    this.counters.grants++;
    this.grantsOpen++;
    r.lastUsed = Date.now();
    let direct = false;
    try {
      if (r instanceof FdGrant) r.markDirect();
      direct = r instanceof FdGrant && setODirect(r.fd, true);
    } catch (err) {
      this.log.debug({ err }, 'LOCALIO: O_DIRECT refused; direct IO on this file goes buffered');
    }
    if (!direct || g.revoked || s.ended || this.session !== s) {
      r.revoke();
      return undefined;
    }
    return r as FdGrant;
  }

  /** @internal The channel closed or the embedded session ended under us. */
  sessionLost(s: Session): void {
    if (this.session !== s) return;
    this.session = undefined;
    this.counters.sessionsLost++;
    this.dropFiles();
    if (this.state === 'local') this.state = 'remote';
    if (this.closed) return;
    // The server went away: probe again once it can answer (a probe on the
    // NFS connection waits for the reconnect; 'reconnect' probes too).
    this.retryLater();
  }

  /** Probe again soon: 50 ms, doubling (to 30 s) while sessions keep dying young. */
  private retryLater(): void {
    const young = Date.now() - this.sessionStart < 5000;
    this.lostInRow = young ? Math.min(this.lostInRow + 1, 10) : 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.probe(), Math.min(50 * 2 ** this.lostInRow, 30_000));
    this.retryTimer.unref();
  }

  private dropFiles(): void {
    this.files = new Map();
    this.byFh = new WeakMap();
  }

  /** @internal A grant was revoked: new IO on its file asks again. */
  forgetGrant(g: Grant): void {
    const f = g.file;
    if (!f) return;
    g.file = undefined;
    if (f.ro === g) f.ro = undefined;
    if (f.rw === g) f.rw = undefined;
    if (!f.ro && !f.rw && !f.roPending && !f.rwPending && f.roRefused === undefined && f.rwRefused === undefined && this.files.get(f.key) === f) this.files.delete(f.key);
  }

  /** @internal A grant's descriptor is closed. */
  grantClosed(g: Grant): void {
    this.forgetGrant(g);
    this.grantsOpen = Math.max(0, this.grantsOpen - 1);
  }

  private fileOf(fh: nfs_fh3, s: Session): FileGrants {
    let f = this.byFh.get(fh);
    if (f && f.session === s && !f.released) return f;
    const k = keyOf(fh);
    f = this.files.get(k);
    if (!f || f.session !== s || f.released) {
      f = { key: k, session: s };
      this.files.set(k, f);
    }
    this.byFh.set(fh, f);
    return f;
  }

  /**
   * Without waiting: a grant already held for `fh`, acquired; null when
   * there is none to be had (not local, or refused); undefined when one must
   * be asked for (use acquire()).
   */
  tryAcquire(fh: nfs_fh3, write: boolean): Grant | null | undefined {
    if (this.state !== 'local') return this.state === 'probing' && this.firstProbe ? undefined : null;
    const f = this.byFh.get(fh);
    if (!f || f.session !== this.session || f.released) return undefined;
    const have = write ? f.rw : (f.ro ?? f.rw);
    if (have?.acquire()) return have;
    if (write ? f.rwRefused !== undefined : f.roRefused !== undefined && !f.rw) return null;
    return undefined;
  }

  /**
   * A grant for IO on `fh` (read-write when `write`), acquired (release it
   * after the IO), or undefined: the IO goes over RPC.
   */
  async acquire(fh: nfs_fh3, write: boolean): Promise<Grant | undefined> {
    if (this.state === 'probing' && this.firstProbe) await this.ready(this.waitMs);
    const s = this.session;
    if (!s || s.ended) return undefined;
    const f = this.fileOf(fh, s);
    const have = write ? f.rw : (f.ro ?? f.rw);
    if (have?.acquire()) return have;
    if (write ? f.rwRefused !== undefined : f.roRefused !== undefined && !f.rw) return undefined;
    let p = write ? f.rwPending : f.roPending;
    if (!p) {
      p = this.requestGrant(s, f, fh, write);
      if (write) f.rwPending = p;
      else f.roPending = p;
    }
    const g = await p;
    return g?.acquire() ? g : undefined;
  }

  private async requestGrant(s: Session, f: FileGrants, fh: nfs_fh3, write: boolean): Promise<Grant | undefined> {
    try {
      if (this.grantsOpen >= this.maxGrants) this.closeIdleGrants();
      const r = await s.open({ data: Buffer.from(fh.data) }, write);
      if (!r) return undefined;
      if ('refused' in r) {
        this.counters.grantRefusals++;
        if (write) f.rwRefused = r.status;
        else f.roRefused = r.status;
        this.log.debug({ status: r.status, reason: r.reason, write }, 'LOCALIO: grant refused; this file uses RPC');
        return undefined;
      }
      this.counters.grants++;
      this.grantsOpen++;
      r.lastUsed = Date.now();
      r.fh = { data: Buffer.from(fh.data) };
      if (s.ended || this.session !== s || f.released) {
        r.revoke();
        return undefined;
      }
      const old = write ? f.rw : f.ro;
      if (write) f.rw = r;
      else f.ro = r;
      r.file = f;
      if (this.files.get(f.key) !== f) this.files.set(f.key, f);
      old?.revoke();
      return r;
    } finally {
      if (write) f.rwPending = undefined;
      else f.roPending = undefined;
    }
  }

  /** Over the limit of descriptors: close idle grants, least recently used first (a quarter of them). */
  private closeIdleGrants(): void {
    const all: Grant[] = [];
    for (const f of this.files.values()) {
      if (f.ro && f.ro.inflight === 0) all.push(f.ro);
      if (f.rw && f.rw.inflight === 0) all.push(f.rw);
    }
    all.sort((a, b) => a.lastUsed - b.lastUsed);
    for (const g of all.slice(0, Math.max(1, Math.floor(this.maxGrants / 4)))) g.revoke();
  }

  /** The client dropped a file (closed, nothing cached): close its grants. */
  fileReleased(fh: nfs_fh3): void {
    const k = keyOf(fh);
    const f = this.files.get(k);
    if (!f) return;
    this.files.delete(k);
    f.released = true;
    f.ro?.revoke();
    f.rw?.revoke();
  }

  /** @internal Whether an IO that failed on `g` should be sent again over RPC. */
  retryOverRpc(err: unknown, g: Grant): boolean {
    if (g.revoked || this.session === undefined) return true;
    const code = (err as { code?: unknown } | null)?.code;
    // The engine shut down, the descriptor went away, the grant was revoked.
    return code === 'ESHUTDOWN' || code === 'EBADF' || code === 'ELOCALIO_REVOKED';
  }

  stats(): LocalioClientStats {
    const st = nativeStatus();
    const d = this.dirty;
    const out: LocalioClientStats = {
      enabled: this.enabled,
      fdPassing: fdPassingAvailable(),
      state: this.state,
      registry: this.registry,
      ...this.counters,
      grantsOpen: this.grantsOpen,
      io: {
        ...(this.engine?.stats() ?? idleEngineStats(this.readMode, this.writeMode)),
        dirtyWaits: d?.throttled ?? 0,
        dirtyWaitMs: d?.throttledMs ?? 0,
        dirtyBytes: d?.used ?? 0,
        dirtyLimit: d?.hard ?? 0,
      },
    };
    if (!st.available) out.reason = `native addon: ${st.reason ?? 'unavailable'}`;
    if (this.state === 'local' && this.mode) out.mode = this.mode;
    return out;
  }

  /** Ends the session (grants close once their IO is done) and stops probing; stats keep the last state. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.rpc.off('reconnect', this.onReconnect);
    // The state stays what it was (stats printed after close say how the data went).
    const s = this.session;
    this.session = undefined;
    this.dropFiles();
    s?.end();
  }
}

// ---------------------------------------------------------------- transport

/**
 * READ, WRITE and COMMIT through granted descriptors, per file; over RPC
 * (the fallback transport) when the file has no grant, was refused one, or
 * its grant went away.
 */
export class LocalioTransport implements DataTransport {
  readonly kind = 'localio';

  constructor(
    private readonly lio: LocalioClient,
    private readonly rpc: DataTransport,
  ) {}

  async landsInHostCache(fh: nfs_fh3): Promise<boolean> {
    // Asks for the read-write grant when there is none yet (one round trip on the channel).
    let g = this.lio.tryAcquire(fh, true);
    if (g === null) return false;
    g ??= await this.lio.acquire(fh, true);
    if (!g) return false;
    g.release();
    return g.hostCached;
  }

  readCached(fh: nfs_fh3, buf: Buffer, off: number, len: number, pos: number): number | undefined {
    const g = this.lio.tryAcquire(fh, false);
    if (!g) return undefined;
    try {
      const n = g.readCached(buf, off, len, pos);
      if (n !== undefined) {
        this.lio.counters.reads++;
        this.lio.counters.readBytes += n;
      }
      return n;
    } finally {
      g.release();
    }
  }

  async readDirect(fh: nfs_fh3, buf: Buffer, off: number, len: number, pos: number): Promise<number | undefined> {
    let g = this.lio.tryAcquire(fh, false);
    if (g === null) return undefined;
    g ??= await this.lio.acquire(fh, false);
    if (!g) return undefined;
    try {
      const n = await g.readInto(buf, off, len, pos);
      this.lio.counters.reads++;
      this.lio.counters.readBytes += n;
      return n;
    } catch (err) {
      if (this.lio.retryOverRpc(err, g)) return undefined;
      throw localIoError(err, 'READ');
    } finally {
      g.release();
    }
  }

  async read(fh: nfs_fh3, offset: number, count: number): Promise<ReadResult> {
    const g = await this.lio.acquire(fh, false);
    if (g) {
      try {
        const r = await g.read(offset, count);
        this.lio.counters.reads++;
        this.lio.counters.readBytes += r.data.length;
        return r;
      } catch (err) {
        if (!this.lio.retryOverRpc(err, g)) throw localIoError(err, 'READ');
      } finally {
        g.release();
      }
    }
    this.lio.counters.fallbacks++;
    return this.rpc.read(fh, offset, count);
  }

  async write(fh: nfs_fh3, offset: number, data: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult> {
    const g = await this.lio.acquire(fh, true);
    if (g) {
      try {
        const r = await g.writeData(offset, data, length, stable);
        this.lio.counters.writes++;
        this.lio.counters.writeBytes += r.count;
        return r;
      } catch (err) {
        if (!this.lio.retryOverRpc(err, g)) throw localIoError(err, 'WRITE');
      } finally {
        g.release();
      }
    }
    this.lio.counters.fallbacks++;
    return this.rpc.write(fh, offset, data, length, stable);
  }

  async commit(fh: nfs_fh3, offset: number, count: number): Promise<CommitResult> {
    const g = await this.lio.acquire(fh, true);
    if (g) {
      try {
        const r = await g.commit();
        this.lio.counters.commits++;
        return r;
      } catch (err) {
        if (!this.lio.retryOverRpc(err, g)) throw localIoError(err, 'COMMIT');
      } finally {
        g.release();
      }
    }
    this.lio.counters.fallbacks++;
    return this.rpc.commit(fh, offset, count);
  }
}

