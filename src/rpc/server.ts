// RpcServer: accepts TCP connections, reassembles records, decodes call
// headers and credentials, dispatches to registered procedure tables and
// writes replies. Calls on one connection run concurrently and are answered
// as they finish (matched by XID); a per-connection limit on calls in flight
// stops reading the socket instead of queueing without bound.

import net from 'node:net';
import { XdrReader, XdrWriter, XdrError } from '../xdr/index.js';
import { RecordBuffers } from '../xdr/buffer-pool.js';
import { RecordDecoder, RecordTooLargeError } from './record.js';
import {
  AcceptStat,
  AuthError,
  AuthFlavor,
  AuthStat,
  type AuthSys,
  type CallHeader,
  decodeAuthSys,
  decodeCallHeader,
  encodeAcceptedReply,
  encodeAuthErrorReply,
  encodeRpcMismatchReply,
  MsgType,
  peekXid,
  RPC_VERSION,
} from './message.js';
import { RpcAcceptError } from './errors.js';
import { type Logger, silentLogger } from '../log.js';

/** What a procedure knows about the call it serves. */
export interface CallContext {
  readonly header: CallHeader;
  readonly xid: number;
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  /** The credential's flavor; `authSys` is set for AUTH_SYS. */
  readonly flavor: number;
  readonly authSys?: AuthSys;
  readonly conn: RpcConnectionInfo;
  /** The raw argument bytes (for duplicate request cache keys). */
  readonly args: Buffer;
  /**
   * Runs `fn` once the reply has been written to the socket, or once it is
   * known that it never will be (closed connection, failed call): the
   * moment buffers the results reference may be reused. Optional, for
   * contexts made elsewhere (tests, embedders).
   */
  afterReply?(fn: () => void): void;
  /**
   * The handler keeps no reference to its arguments (nor to the record)
   * past its reply: the record's memory may be reused once the reply is
   * written. Optional, as afterReply.
   */
  recycleArgs?(): void;
}

export interface RpcConnectionInfo {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
}

/** Writes a procedure's results after the SUCCESS header. */
export type Encoder = (w: XdrWriter) => void;

export type Handler = (args: XdrReader, ctx: CallContext) => Encoder | void | Promise<Encoder | void>;

export interface ProcedureDef {
  name: string;
  handler: Handler;
  /** Non-idempotent procedures go through the duplicate request cache. */
  idempotent?: boolean;
}

export interface ProgramVersion {
  prog: number;
  vers: number;
  procedures: ReadonlyMap<number, ProcedureDef>;
  /** Credential flavors accepted (default: AUTH_NONE and AUTH_SYS). */
  flavors?: readonly number[];
}

/**
 * A duplicate request cache: consulted before a non-idempotent call runs, so
 * that a retransmission is answered with the first reply.
 */
export interface ReplyCache<Ticket = unknown> {
  /**
   * 'drop': the original is still running; a Buffer: the saved reply, to
   * send again; else a new call, which runs and then hands the ticket to end.
   */
  begin(ctx: CallContext): 'drop' | Buffer | Ticket;
  /** The reply was sent (or undefined: the call failed and should run again). */
  end(ticket: Ticket, reply: Buffer | undefined): void;
}

export interface CallRecord {
  prog: number;
  vers: number;
  proc: number;
  name: string;
  /** accept_stat, or -1 for a denied call. */
  status: number;
  durationNs: bigint;
}

export interface RpcServerOptions {
  /** Largest record accepted; a larger one closes its connection. */
  maxRecord?: number;
  /** Calls in flight per connection before the server stops reading it. */
  maxInflight?: number;
  /** Bytes waiting in a socket's write buffer before reading pauses. */
  maxWriteBuffer?: number;
  logger?: Logger;
  replyCache?: ReplyCache;
  /** Called once per answered call (stats). */
  onCall?: (rec: CallRecord) => void;
}

const ALL_FLAVORS_DEFAULT = [AuthFlavor.NONE, AuthFlavor.SYS];
/** Records smaller than this are not pooled (Node's own allocator does well with them). */
const RECORD_POOL_MIN = 64 * 1024;

let nextConnId = 1;

/** The CallContext RpcServer makes: a class, so a call costs no closures. */
class Call implements CallContext {
  /** afterReply callbacks not yet handed to a socket write. */
  pending: (() => void)[] | undefined;

  constructor(
    readonly header: CallHeader,
    readonly xid: number,
    readonly authSys: AuthSys | undefined,
    readonly conn: Connection,
    readonly args: Buffer,
    /** Gives the record back to the record pool, when it came from there. */
    private releaseRecord: (() => void) | undefined,
  ) {}

  get prog(): number {
    return this.header.prog;
  }

  get vers(): number {
    return this.header.vers;
  }

  get proc(): number {
    return this.header.proc;
  }

  get flavor(): number {
    return this.header.cred.flavor;
  }

  afterReply(fn: () => void): void {
    (this.pending ??= []).push(fn);
  }

  recycleArgs(): void {
    const release = this.releaseRecord;
    this.releaseRecord = undefined;
    if (release) this.afterReply(release);
  }

  /** Takes the callbacks (for the write that carries the reply). */
  takeCallbacks(): (() => void)[] | undefined {
    const p = this.pending;
    this.pending = undefined;
    return p;
  }

  /** Runs what was not handed to a write. */
  settle(): void {
    const p = this.takeCallbacks();
    if (p) runAll(p);
  }
}

function runAll(fns: (() => void)[]): void {
  for (const fn of fns) fn();
}

class Connection implements RpcConnectionInfo {
  readonly id = nextConnId++;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  readonly decoder: RecordDecoder;
  inflight = 0;
  backlog: Buffer[] = [];
  paused = false;
  corked = false;
  closed = false;

  constructor(readonly socket: net.Socket, maxRecord: number, alloc: (n: number) => Buffer) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.localPort = socket.localPort ?? 0;
    this.decoder = new RecordDecoder(maxRecord, alloc);
  }
}

export class RpcServer {
  readonly maxRecord: number;
  private readonly maxInflight: number;
  private readonly maxWriteBuffer: number;
  private readonly log: Logger;
  private readonly programs = new Map<number, Map<number, ProgramVersion>>();
  private readonly listeners: net.Server[] = [];
  private readonly conns = new Set<Connection>();
  /**
   * Large records that arrived in pieces are assembled in pooled buffers;
   * one goes back to the pool when its handler says it kept nothing of it
   * (recycleArgs), else to the garbage collector.
   */
  private readonly records: RecordBuffers;

  constructor(private readonly opts: RpcServerOptions = {}) {
    this.maxRecord = opts.maxRecord ?? 1024 * 1024 + 64 * 1024;
    this.maxInflight = opts.maxInflight ?? 64;
    this.maxWriteBuffer = opts.maxWriteBuffer ?? 8 * 1024 * 1024;
    this.log = opts.logger ?? silentLogger;
    this.records = new RecordBuffers(RECORD_POOL_MIN, this.maxRecord);
  }

  register(pv: ProgramVersion): void {
    let versions = this.programs.get(pv.prog);
    if (!versions) this.programs.set(pv.prog, (versions = new Map()));
    versions.set(pv.vers, pv);
  }

  /** Programs and versions served, for the portmapper. */
  registered(): { prog: number; vers: number }[] {
    const out: { prog: number; vers: number }[] = [];
    for (const [prog, versions] of this.programs) for (const vers of versions.keys()) out.push({ prog, vers });
    return out;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Start listening; may be called several times (NFS and MOUNT ports). */
  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    const srv = net.createServer({ noDelay: true }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ port, host, exclusive: true }, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    srv.on('error', (err) => this.log.error({ err }, 'listener error'));
    this.listeners.push(srv);
    return (srv.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    const closing = this.listeners.map((l) => new Promise<void>((r) => l.close(() => r())));
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
    this.listeners.length = 0;
    await Promise.all(closing);
  }

  /** Serve an already connected socket (e.g. one accepted elsewhere). */
  accept(socket: net.Socket): void {
    const conn = new Connection(socket, this.maxRecord, this.records.alloc);
    this.conns.add(conn);
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => this.onData(conn, data));
    socket.on('drain', () => this.maybeResume(conn));
    socket.on('error', (err) => this.log.debug({ err, conn: conn.id }, 'connection error'));
    socket.on('close', () => {
      conn.closed = true;
      this.conns.delete(conn);
    });
  }

  private onData(conn: Connection, data: Buffer): void {
    let records: Buffer[];
    try {
      records = conn.decoder.push(data);
    } catch (err) {
      if (err instanceof RecordTooLargeError) {
        this.log.warn({ conn: conn.id, remote: conn.remoteAddress, msg: err.message }, 'record too large; closing connection');
        conn.socket.destroy();
        return;
      }
      throw err;
    }
    for (const rec of records) {
      if (conn.inflight < this.maxInflight) this.dispatch(conn, rec);
      else conn.backlog.push(rec);
    }
    if (conn.backlog.length > 0) this.pause(conn);
  }

  private pause(conn: Connection): void {
    if (!conn.paused) {
      conn.paused = true;
      conn.socket.pause();
    }
  }

  private maybeResume(conn: Connection): void {
    while (conn.backlog.length > 0 && conn.inflight < this.maxInflight) this.dispatch(conn, conn.backlog.shift()!);
    if (conn.paused && conn.backlog.length === 0 && conn.inflight < this.maxInflight && conn.socket.writableLength < this.maxWriteBuffer) {
      conn.paused = false;
      conn.socket.resume();
    }
  }

  private dispatch(conn: Connection, record: Buffer): void {
    conn.inflight++;
    const start = process.hrtime.bigint();
    this.handle(conn, record, start).then(
      () => this.done(conn),
      (err) => {
        this.log.error({ err }, 'unexpected error while answering a call');
        this.done(conn);
      },
    );
  }

  private done(conn: Connection): void {
    conn.inflight--;
    if (conn.socket.writableLength >= this.maxWriteBuffer) this.pause(conn);
    else this.maybeResume(conn);
  }

  private async handle(conn: Connection, record: Buffer, start: bigint): Promise<void> {
    const head = peekXid(record);
    if (!head || head.msgType !== MsgType.CALL) {
      // Too short to answer, or a reply sent to a server: nothing to say.
      this.log.debug({ conn: conn.id }, 'dropping a record that is not a call');
      return;
    }
    const xid = head.xid;
    const r = new XdrReader(record);
    let header: CallHeader;
    try {
      header = decodeCallHeader(r);
    } catch {
      if (r.offset >= 24) {
        // The fixed part was fine; the credential or verifier is not.
        this.reply(conn, (w) => encodeAuthErrorReply(w, xid, AuthStat.AUTH_BADCRED), start, undefined, -1);
      } else {
        this.reply(conn, (w) => encodeAcceptedReply(w, xid, AcceptStat.GARBAGE_ARGS), start, undefined, AcceptStat.GARBAGE_ARGS);
      }
      return;
    }
    if (header.rpcvers !== RPC_VERSION) {
      this.reply(conn, (w) => encodeRpcMismatchReply(w, xid), start, undefined, -1);
      return;
    }
    const versions = this.programs.get(header.prog);
    const pv = versions?.get(header.vers);
    let authSys: AuthSys | undefined;
    try {
      authSys = this.authenticate(header, pv);
    } catch (err) {
      const stat = err instanceof AuthError ? err.stat : AuthStat.AUTH_BADCRED;
      this.reply(conn, (w) => encodeAuthErrorReply(w, xid, stat), start, undefined, -1, '', header);
      return;
    }
    if (!versions) {
      this.reply(conn, (w) => encodeAcceptedReply(w, xid, AcceptStat.PROG_UNAVAIL), start, undefined, AcceptStat.PROG_UNAVAIL, '', header);
      return;
    }
    if (!pv) {
      let low = Infinity;
      let high = 0;
      for (const v of versions.keys()) {
        low = Math.min(low, v);
        high = Math.max(high, v);
      }
      this.reply(conn, (w) => encodeAcceptedReply(w, xid, AcceptStat.PROG_MISMATCH, { low, high }), start, undefined, AcceptStat.PROG_MISMATCH, '', header);
      return;
    }
    const def = pv.procedures.get(header.proc);
    if (!def) {
      this.reply(conn, (w) => encodeAcceptedReply(w, xid, AcceptStat.PROC_UNAVAIL), start, undefined, AcceptStat.PROC_UNAVAIL, '', header);
      return;
    }
    const ctx = new Call(header, xid, authSys, conn, record.subarray(r.offset), this.records.releaseOf(record));
    try {
      await this.call(conn, def, r, ctx, start);
    } finally {
      ctx.settle();
    }
  }

  private async call(conn: Connection, def: ProcedureDef, r: XdrReader, ctx: Call, start: bigint): Promise<void> {
    const { xid, header } = ctx;
    const cache = def.idempotent === false ? this.opts.replyCache : undefined;
    let ticket: unknown;
    if (cache) {
      ticket = cache.begin(ctx);
      if (ticket === 'drop') return;
      if (Buffer.isBuffer(ticket)) {
        this.send(conn, [ticket]);
        this.record(ctx, def.name, AcceptStat.SUCCESS, start);
        return;
      }
    }
    let encoder: Encoder | void;
    let stat: AcceptStat = AcceptStat.SUCCESS;
    try {
      encoder = await def.handler(r, ctx);
    } catch (err) {
      if (err instanceof XdrError) stat = AcceptStat.GARBAGE_ARGS;
      else if (err instanceof RpcAcceptError) stat = err.stat;
      else if (err instanceof AuthError) {
        cache?.end(ticket, undefined);
        this.reply(conn, (w) => encodeAuthErrorReply(w, xid, err.stat), start, ctx, -1, def.name);
        return;
      } else {
        stat = AcceptStat.SYSTEM_ERR;
        this.log.error({ err, prog: header.prog, proc: def.name }, 'procedure failed');
      }
    }
    let sent: Buffer[];
    try {
      sent = this.reply(conn, (w) => {
        encodeAcceptedReply(w, xid, stat);
        if (stat === AcceptStat.SUCCESS && encoder) encoder(w);
      }, start, ctx, stat, def.name);
    } catch (err) {
      // The results would not encode: a server bug, answered as such.
      this.log.error({ err, prog: header.prog, proc: def.name }, 'results failed to encode');
      stat = AcceptStat.SYSTEM_ERR;
      sent = this.reply(conn, (w) => encodeAcceptedReply(w, xid, AcceptStat.SYSTEM_ERR), start, ctx, stat, def.name);
    }
    // Copied now: afterReply callbacks (which may recycle what the chunks
    // reference) run after the socket write, or after this call returns.
    cache?.end(ticket, stat === AcceptStat.SUCCESS ? Buffer.concat(sent) : undefined);
  }

  private authenticate(header: CallHeader, pv: ProgramVersion | undefined): AuthSys | undefined {
    const flavor = header.cred.flavor;
    const allowed = pv?.flavors ?? ALL_FLAVORS_DEFAULT;
    if (flavor === AuthFlavor.SYS) {
      const sys = decodeAuthSys(header.cred.body);
      if (!allowed.includes(flavor)) throw new AuthError(AuthStat.AUTH_TOOWEAK);
      return sys;
    }
    if (flavor === AuthFlavor.NONE) {
      if (!allowed.includes(flavor)) throw new AuthError(AuthStat.AUTH_TOOWEAK);
      return undefined;
    }
    // Flavors we do not implement (DH, GSS, ...).
    throw new AuthError(AuthStat.AUTH_REJECTEDCRED);
  }

  /** Encode a whole reply record and send it; returns its chunks. */
  /** `who`: the call's numbers when there is no Call (refused before dispatch), for stats. */
  private reply(conn: Connection, body: (w: XdrWriter) => void, start: bigint, ctx: Call | undefined, status: number, name = '', who?: CallHeader): Buffer[] {
    const w = new XdrWriter(256);
    w.uint(0); // record mark, patched below once the length is known
    body(w);
    const chunks = w.chunksList();
    chunks[0]!.writeUInt32BE((0x8000_0000 | (w.length - 4)) >>> 0, 0);
    // On a closed connection the callbacks stay with the call, to run when it ends.
    this.send(conn, chunks, conn.closed ? undefined : ctx?.takeCallbacks());
    if (ctx) this.record(ctx, name, status, start);
    else this.opts.onCall?.({ prog: who?.prog ?? 0, vers: who?.vers ?? 0, proc: who?.proc ?? 0, name: '', status, durationNs: process.hrtime.bigint() - start });
    return chunks;
  }

  private record(ctx: CallContext, name: string, status: number, start: bigint): void {
    this.opts.onCall?.({ prog: ctx.prog, vers: ctx.vers, proc: ctx.proc, name, status, durationNs: process.hrtime.bigint() - start });
  }

  /**
   * Replies finishing in the same event-loop turn share one writev.
   * `written` runs once the socket is done with the chunks.
   */
  private send(conn: Connection, chunks: Buffer[], written?: (() => void)[]): void {
    if (conn.closed) return;
    const s = conn.socket;
    if (!conn.corked) {
      conn.corked = true;
      s.cork();
      setImmediate(() => {
        conn.corked = false;
        s.uncork();
      });
    }
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) s.write(chunks[i]!);
    // Node calls a write's callback once the kernel has the bytes, or the
    // stream is destroyed; either way the buffers are free after it.
    if (written) s.write(chunks[last]!, () => runAll(written));
    else s.write(chunks[last]!);
  }
}
