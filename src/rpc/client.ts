// RpcClient: one TCP connection carrying many calls at once, matched to
// replies by XID. After the server restarts, the client reconnects and sends
// again every call still waiting (same XID, so the server's duplicate
// request cache can recognise it). Calls fail with a typed RpcError.

import net from 'node:net';
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { XdrReader, XdrWriter, XdrError } from '../xdr/index.js';
import { RecordDecoder, RecordTooLargeError, STREAM_MIN } from './record.js';
import { AUTH_NONE, AcceptStat, type AuthSys, decodeReplyHeader, encodeAuthSys, encodeCallHeader, MsgType, type OpaqueAuth, RPC_VERSION } from './message.js';
import {
  acceptError,
  RpcAuthError,
  RpcConnectionError,
  RpcError,
  RpcMismatchError,
  RpcProtocolError,
  RpcTimeoutError,
} from './errors.js';
import { type Logger, silentLogger } from '../log.js';
import { RecordBuffers } from '../xdr/buffer-pool.js';

/** Receive buffers while no large record is being filled: slabs of this size, used down to RECEIVE_MIN bytes. */
const RECEIVE_SLAB = 256 * 1024;
const RECEIVE_MIN = 32 * 1024;
/**
 * What is read at a record boundary after a large reply (another is likely
 * next: READ data streaming in): a READ reply's head, so its body goes
 * straight into the record's own buffer instead of a slab and a copy.
 */
const HEAD_READ = 512;
/** Calls queued in one tick with at most this many bytes in all are copied into one buffer for one write. */
const COALESCE_MAX = 64 * 1024;
/**
 * Calls made in one tick go out in writes of at most this many (see
 * transmit). Four measured best for 16 small calls in flight on 2 cores.
 */
const SEND_GROUP = 4;
/** Room past a power of two in the record pool's classes, for an RPC and NFS reply header. */
const RECORD_SLACK = 4096;

export interface RpcClientOptions {
  host: string;
  port: number;
  /** Default program and version for `call`. */
  prog: number;
  vers: number;
  /** AUTH_SYS credential, or an opaque_auth (default AUTH_NONE). */
  cred?: AuthSys | OpaqueAuth;
  /** Per-call limit in ms; 0 waits forever (an NFS "hard" mount). Default 60 s. */
  timeoutMs?: number;
  /** Reconnect and resend after the connection drops (default true). */
  reconnect?: boolean;
  /** Largest reply record accepted (default 4 MiB). */
  maxRecord?: number;
  /** Bind a source port below 1024 (needs root), for `secure` exports. */
  reservedPort?: boolean;
  /**
   * Calls made in one tick go out in writes of at most this many, the first
   * at once (default 4; Infinity: all in one write at the end of the tick).
   */
  sendGroup?: number;
  logger?: Logger;
}

export interface CallOptions {
  prog?: number;
  vers?: number;
  timeoutMs?: number;
  /**
   * A decoded result (or what the decoder threw) that asks for the call to
   * be sent again later (NFS3ERR_JUKEBOX): it goes out again, with a new
   * XID, after a growing delay, for at most `retryForMs` (0 = forever); the
   * caller sees only the last outcome.
   */
  retryLater?: (res: unknown) => boolean;
  retryForMs?: number;
}

/**
 * Reads the results of a SUCCESS reply. `release` is given when the reply
 * was received into a pooled buffer (a large reply): calling it gives that
 * buffer back, so a decoder whose results are views of it (READ data) may
 * pass it on, to be called once nothing uses them. Never calling it is fine
 * (the buffer is then collected).
 */
export type ResultDecoder<T> = (r: XdrReader, release: (() => void) | undefined) => T;

const NO_OPTIONS: CallOptions = {};

interface Pending {
  xid: number;
  prog: number;
  proc: number;
  request: Buffer[];
  sent: boolean;
  decode: ResultDecoder<unknown>;
  opts: CallOptions;
  /** performance.now() past which the call fails (0: never). */
  deadline: number;
  timeoutMs: number;
  /** When the first attempt was made (for retryForMs). */
  started: number;
  laterAttempts: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class RpcClient extends EventEmitter {
  private socket: net.Socket | undefined;
  /** Requests waiting for the end of the current tick, when they go out in one write. */
  private outq: Buffer[] = [];
  private outBytes = 0;
  /** Calls in outq. */
  private outCalls = 0;
  private flushQueued = false;
  private readonly sendGroup: number;
  /** The call header from the message type to the program version (CALL, RPC version, program, version), by program and version. */
  private readonly callHeads = new Map<number, Map<number, Buffer>>();
  /** The credential and verifier, encoded once. */
  private readonly credVerf: Buffer;
  /** Fires at the earliest deadline of the calls waiting, when it is armed. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  private deadlineAt = Infinity;
  private slab: Buffer = Buffer.alloc(0);
  private slabUsed = 0;
  /** The last reply completed was a large one (see HEAD_READ). */
  private largeLast = false;
  private connecting: Promise<void> | undefined;
  private decoder: RecordDecoder;
  /** Large reply records, given back by callers that copied what they needed (see ResultDecoder). */
  private readonly records: RecordBuffers;
  private readonly pending = new Map<number, Pending>();
  private xid = randomInt(0, 0x7fffffff);
  private everConnected = false;
  private closed = false;
  private reconnectDelay = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reservedTries = 0;
  private readonly cred: OpaqueAuth;
  private readonly log: Logger;
  readonly maxRecord: number;
  /** Calls sent again after a reconnect. */
  retransmits = 0;
  /** Writes to the socket that carried calls (one may carry several calls). */
  sends = 0;
  /** Calls sent again because the result asked for it (CallOptions.retryLater). */
  laterRetries = 0;

  constructor(readonly opts: RpcClientOptions) {
    super();
    this.maxRecord = opts.maxRecord ?? 4 * 1024 * 1024;
    this.sendGroup = Math.max(1, opts.sendGroup ?? SEND_GROUP);
    // Classes a little over powers of two: a 1 MiB READ reply (data plus a
    // few hundred bytes of header) fits the 1 MiB class.
    this.records = new RecordBuffers(STREAM_MIN, this.maxRecord, RECORD_SLACK);
    this.decoder = new RecordDecoder(this.maxRecord, this.records.alloc, 0);
    const c = opts.cred;
    this.cred = !c ? AUTH_NONE : 'flavor' in c ? c : encodeAuthSys(c);
    const w = new XdrWriter(512);
    encodeCallHeader(w, 0, 0, 0, 0, this.cred);
    // What follows the 24 bytes of xid, type, rpcvers, prog, vers and proc.
    this.credVerf = Buffer.from(w.toBuffer().subarray(24));
    this.log = opts.logger ?? silentLogger;
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Connect now (calls connect lazily otherwise); rejects if the server is unreachable. */
  connect(): Promise<void> {
    if (this.socket && !this.connecting) return Promise.resolve();
    return this.ensureConnection();
  }

  /**
   * Call a procedure. `encode` writes the arguments; `decode` reads the
   * results of a SUCCESS reply (a decode error becomes RpcProtocolError).
   */
  call<T>(proc: number, encode: ((w: XdrWriter) => void) | undefined, decode: ResultDecoder<T>, opts: CallOptions = NO_OPTIONS): Promise<T> {
    if (this.closed) return Promise.reject(new RpcConnectionError('client is closed'));
    const prog = opts.prog ?? this.opts.prog;
    const vers = opts.vers ?? this.opts.vers;
    const xid = this.nextXid();
    let request: Buffer[];
    try {
      request = this.encodeCall(xid, prog, vers, proc, encode);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = opts.timeoutMs ?? this.opts.timeoutMs ?? 60_000;
    const now = performance.now();
    return new Promise<T>((resolve, reject) => {
      this.enqueue({
        xid,
        prog,
        proc,
        request,
        sent: false,
        decode,
        opts,
        deadline: timeoutMs > 0 ? now + timeoutMs : 0,
        timeoutMs,
        started: now,
        laterAttempts: 0,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
    });
  }

  /** The call's record: record mark, header (mostly copied from templates), arguments. */
  private encodeCall(xid: number, prog: number, vers: number, proc: number, encode: ((w: XdrWriter) => void) | undefined): Buffer[] {
    const w = new XdrWriter(256);
    w.uint(0); // record mark, patched below
    w.uint(xid);
    w.opaqueFixed(this.callHead(prog, vers));
    w.uint(proc);
    w.opaqueFixed(this.credVerf);
    encode?.(w);
    const request = w.chunksList();
    request[0]!.writeUInt32BE((0x8000_0000 | (w.length - 4)) >>> 0, 0);
    return request;
  }

  private callHead(prog: number, vers: number): Buffer {
    let byVers = this.callHeads.get(prog);
    if (!byVers) this.callHeads.set(prog, (byVers = new Map()));
    let b = byVers.get(vers);
    if (!b) {
      const w = new XdrWriter(16);
      w.uint(MsgType.CALL).uint(RPC_VERSION).uint(prog).uint(vers);
      b = w.toBuffer();
      byVers.set(vers, b);
    }
    return b;
  }

  private enqueue(p: Pending): void {
    this.pending.set(p.xid, p);
    if (p.deadline > 0 && p.deadline < this.deadlineAt) this.armDeadline(p.deadline);
    // The first call waiting keeps the process alive (onData lets go when none is left).
    if (this.pending.size === 1) this.socket?.ref();
    if (this.socket && !this.connecting) this.transmit(p);
    else this.ensureConnection().catch(() => undefined);
  }

  /**
   * One timer for all calls, at the earliest deadline: a call costs no
   * timer of its own, and a sweep that finds calls not yet due arms the
   * timer again for the next one.
   */
  private armDeadline(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    this.deadlineTimer = setTimeout(() => this.sweepDeadlines(), Math.max(0, at - performance.now()) + 1);
    // Waiting calls keep the process alive through the socket; the timer alone must not.
    this.deadlineTimer.unref();
  }

  private sweepDeadlines(): void {
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const p of this.pending.values()) {
      if (p.deadline === 0) continue;
      if (p.deadline <= now) this.fail(p, new RpcTimeoutError(p.timeoutMs));
      else if (p.deadline < next) next = p.deadline;
    }
    if (next < Infinity) this.armDeadline(next);
    if (this.pending.size === 0) this.socket?.unref();
  }

  /** Close the connection; calls still waiting fail. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.failAll(new RpcConnectionError('client closed'));
    this.dropQueued();
    this.socket?.destroy();
    this.socket = undefined;
  }

  private nextXid(): number {
    this.xid = (this.xid + 1) >>> 0;
    return this.xid;
  }

  /**
   * Calls made before the current callback and its promise jobs are done
   * go out together at the end of the tick: callers that send their next
   * call as a reply comes in (many replies arrive in one read) cost one
   * write for the batch, and no call waits for a later turn of the loop.
   *
   * But not all in one write: each group of `sendGroup` calls goes as soon
   * as it is complete. With the whole batch in one write, server and client
   * take turns (the server answers the batch while the client waits, then
   * the client makes the next batch while the server waits) and each idles
   * a quarter of the time at 16 small calls in flight. Sent in groups, the
   * server starts on the first group while the client makes the rest: 13%
   * more 4 KiB READs per second from one server (bench/RESULTS.md), for a
   * few more writes.
   */
  private transmit(p: Pending): void {
    p.sent = true;
    for (const c of p.request) {
      this.outq.push(c);
      this.outBytes += c.length;
    }
    if (++this.outCalls >= this.sendGroup) {
      this.flush();
      return;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flushAtTickEnd);
    }
  }

  private readonly flushAtTickEnd = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  private flush(): void {
    const s = this.socket;
    const q = this.outq;
    const bytes = this.outBytes;
    this.dropQueued();
    // Closed meanwhile: onClose marked the calls unsent; the next connection sends them.
    if (!s || q.length === 0) return;
    this.sends++;
    if (q.length === 1) s.write(q[0]!);
    else if (bytes <= COALESCE_MAX) s.write(Buffer.concat(q, bytes));
    else {
      // Large arguments (WRITE data) go by reference, in one writev.
      s.cork();
      for (const c of q) s.write(c);
      s.uncork();
    }
  }

  private dropQueued(): void {
    this.outq = [];
    this.outBytes = 0;
    this.outCalls = 0;
  }

  /**
   * Where small replies are received: the unused end of a slab, so many
   * reads share one allocation (replies are views into it, as into node's
   * own read buffers; bytes once received are never overwritten).
   */
  private slabSpace(): Buffer {
    if (this.slab.length - this.slabUsed < RECEIVE_MIN) {
      this.slab = Buffer.allocUnsafe(RECEIVE_SLAB);
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed);
  }

  private ensureConnection(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<void>((resolve, reject) => {
      // Large replies (READ data) are received straight into the buffer of
      // their record, not read in 64 KiB pieces and copied there. (node
      // honours `onread` in the constructor only.)
      const onread: net.OnReadOpts = {
        buffer: () => {
          const target = this.socket === socket ? this.decoder.fillTarget() : undefined;
          if (target) return target;
          const space = this.slabSpace();
          return this.largeLast ? space.subarray(0, HEAD_READ) : space;
        },
        callback: (n, buf) => {
          if (buf.buffer === this.slab.buffer) this.slabUsed += n;
          this.onData(socket, Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      };
      const socket = new net.Socket({ onread } as net.SocketConstructorOpts);
      const onError = (err: NodeJS.ErrnoException): void => {
        socket.destroy();
        this.connecting = undefined;
        if (err.code === 'EADDRINUSE' && this.opts.reservedPort && ++this.reservedTries < 400) {
          // That reserved port is taken: try the next one.
          this.ensureConnection().then(resolve, reject);
          return;
        }
        reject(err);
        this.onConnectFailed(err);
      };
      socket.once('error', onError);
      const connectOpts: net.TcpSocketConnectOpts = { host: this.opts.host, port: this.opts.port, noDelay: true };
      if (this.opts.reservedPort) connectOpts.localPort = pickReservedPort();
      socket.connect(connectOpts, () => {
        socket.off('error', onError);
        this.reservedTries = 0;
        this.attach(socket);
        this.connecting = undefined;
        resolve();
      });
    });
    return this.connecting;
  }

  private attach(socket: net.Socket): void {
    const reconnected = this.everConnected;
    this.socket = socket;
    this.everConnected = true;
    this.reconnectDelay = 0;
    this.decoder = new RecordDecoder(this.maxRecord, this.records.alloc, 0);
    socket.setNoDelay(true);
    socket.on('error', (err) => this.log.debug({ err }, 'rpc connection error'));
    socket.on('close', () => this.onClose(socket));
    for (const p of this.pending.values()) {
      if (p.sent) continue;
      if (reconnected) this.retransmits++;
      this.transmit(p);
    }
    if (this.pending.size === 0) socket.unref();
    this.emit(reconnected ? 'reconnect' : 'connect');
  }

  private onConnectFailed(err: Error): void {
    // Before the first connection a failure is final: the address is wrong or
    // the server is down, and the caller should hear it at once.
    if (!this.everConnected || this.opts.reconnect === false || this.closed) {
      this.failAll(new RpcConnectionError(`cannot connect to ${this.opts.host}:${this.opts.port}: ${err.message}`, err));
      return;
    }
    this.scheduleReconnect();
  }

  private onClose(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    if (this.closed) return;
    this.emit('disconnect');
    this.dropQueued();
    if (this.opts.reconnect === false) {
      this.failAll(new RpcConnectionError('connection closed by server'));
      return;
    }
    for (const p of this.pending.values()) p.sent = false;
    if (this.pending.size > 0) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    this.reconnectDelay = Math.min(Math.max(this.reconnectDelay * 2, 50), 2000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.pending.size > 0 && !this.socket) this.ensureConnection().catch(() => undefined);
    }, this.reconnectDelay);
  }

  private onData(socket: net.Socket, data: Buffer): void {
    let records: Buffer[];
    try {
      records = this.decoder.push(data);
    } catch (err) {
      if (err instanceof RecordTooLargeError) {
        // The stream cannot be trusted: fail what is waiting rather than retry forever.
        this.failAll(new RpcProtocolError(`reply too large: ${err.message}`));
        socket.destroy();
        return;
      }
      throw err;
    }
    if (records.length > 0) this.largeLast = records[records.length - 1]!.length >= STREAM_MIN;
    for (const rec of records) this.onReply(rec);
    if (this.pending.size === 0) socket.unref();
  }

  private onReply(rec: Buffer): void {
    const r = new XdrReader(rec);
    let head;
    try {
      head = decodeReplyHeader(r);
    } catch (err) {
      const xid = rec.length >= 4 ? rec.readUInt32BE(0) : -1;
      const p = this.pending.get(xid);
      if (p) this.fail(p, new RpcProtocolError(`malformed reply header: ${(err as Error).message}`));
      else this.log.debug('ignoring a malformed record');
      return;
    }
    const p = this.pending.get(head.xid);
    if (!p) {
      this.log.debug({ xid: head.xid }, 'reply for no waiting call');
      return;
    }
    if (head.kind === 'rpc_mismatch') this.fail(p, new RpcMismatchError(head.low, head.high));
    else if (head.kind === 'auth_error') this.fail(p, new RpcAuthError(head.stat));
    else if (head.stat !== AcceptStat.SUCCESS) this.fail(p, acceptError(head.stat, p.prog, p.proc, head.mismatch));
    else {
      let value: unknown;
      let threw = false;
      try {
        value = p.decode(r, this.records.releaseOf(rec));
      } catch (err) {
        value = err;
        threw = true;
      }
      // The predicate sees what the caller would: the result, or what the decoder threw.
      if (p.opts.retryLater?.(value) && this.sendLater(p)) return;
      if (!threw) {
        this.pending.delete(p.xid);
        p.resolve(value);
      } else {
        this.fail(p, value instanceof XdrError ? new RpcProtocolError(`malformed reply to procedure ${p.proc}: ${value.message}`) : (value as Error));
      }
    }
  }

  private fail(p: Pending, err: Error): void {
    this.pending.delete(p.xid);
    p.reject(err);
  }

  /** Sends a call again later under a new XID, unless its retryForMs is used up; false then. */
  private sendLater(p: Pending): boolean {
    const limit = p.opts.retryForMs ?? 0;
    if (limit > 0 && performance.now() - p.started >= limit) return false;
    this.pending.delete(p.xid);
    this.laterRetries++;
    const delay = Math.min(100 * 2 ** p.laterAttempts++, 5000);
    setTimeout(() => {
      if (this.closed) return p.reject(new RpcConnectionError('client closed'));
      p.xid = this.nextXid();
      p.request[0]!.writeUInt32BE(p.xid, 4);
      p.sent = false;
      if (p.deadline > 0) p.deadline = performance.now() + p.timeoutMs;
      this.enqueue(p);
    }, delay);
    return true;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
  }
}

let nextReserved = 1023;
/** Source ports below 1024, tried from the top as BSD's bindresvport does. */
function pickReservedPort(): number {
  const p = nextReserved;
  nextReserved = nextReserved <= 600 ? 1023 : nextReserved - 1;
  return p;
}
