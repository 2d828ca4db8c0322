// Unix-socket channels that carry file descriptors: the transport under
// LOCALIO (the server grants a client an open file by sending it over the
// client's registry socket).
//
// Design, chosen for robustness in Node:
//  - The addon owns the sockets end to end (socket, bind, listen, accept,
//    connect, sendmsg, recvmsg); libuv never reads them, so no stream layer
//    can swallow a message or its SCM_RIGHTS. Readiness comes from a libuv
//    poll handle on the Node event loop: nothing blocks JavaScript and no
//    thread is spent per socket.
//  - SOCK_SEQPACKET: each send is one record, delivered whole with exactly
//    the descriptors sent with it. The kernel frames; we never reassemble.
//    Payloads are small (at most MAX_MESSAGE_BYTES): JSON or XDR.
//  - Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC) and are
//    closed after the 'message' listeners return unless a listener took them
//    (msg.takeFds()). A record that arrives truncated has its descriptors
//    closed and ends the channel with EMSGSIZE.
//
// Without the addon there is no descriptor passing: fdPassingAvailable() is
// false and connect/listen throw ERR_TSNFS_NATIVE_UNAVAILABLE; LOCALIO then
// stays off and clients use RPC.

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { EAGAIN, ECONNABORTED, EMSGSIZE, EPIPE, nativeUnavailable, sysError } from './errors.js';
import { native, nativeStatus, type NativeAddon, type RawPoller } from './loader.js';

/** The largest payload one message carries. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** The most descriptors one message carries (the kernel's SCM_MAX_FD). */
export const MAX_FDS_PER_MESSAGE = 253;

/** Credentials of the process at the other end of a Unix socket. */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** Whether descriptor passing (and so LOCALIO) is available in this process. */
export function fdPassingAvailable(): boolean {
  return native !== undefined;
}

function need(what: string): NativeAddon {
  if (!native) throw nativeUnavailable(what, nativeStatus().reason);
  return native;
}

/**
 * SO_PEERCRED of a connected Unix socket: the pid, uid and gid the kernel
 * recorded when the peer connected (for an accepted socket) or listened (for
 * a connecting one). A non-root peer cannot forge it.
 */
export function peerCred(fd: number): PeerCred {
  const r = need('peerCred').peerCred(fd);
  if (typeof r === 'number') throw sysError(r, 'getsockopt', '(SO_PEERCRED)');
  return { pid: r.pid, uid: r.uid, gid: r.gid };
}

function closeQuietly(addon: NativeAddon, fd: number): void {
  addon.closeFd(fd);
}

/** One received message: its payload and the descriptors that came with it. */
export class ReceivedMessage {
  private pending: number[];

  constructor(
    /** The payload (a copy: safe to keep). */
    readonly data: Buffer,
    fds: number[],
  ) {
    this.pending = fds;
  }

  /** The received descriptors not yet taken. */
  get fds(): readonly number[] {
    return this.pending;
  }

  /**
   * Takes ownership of the received descriptors: the caller now closes them.
   * Call this from the 'message' listener; descriptors not taken by the time
   * the listeners return are closed.
   */
  takeFds(): number[] {
    const fds = this.pending;
    this.pending = [];
    return fds;
  }

  /** The payload parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.data.toString('utf8')) as T;
  }

  /** Closes descriptors nobody took. */
  release(): void {
    const fds = this.takeFds();
    if (fds.length > 0 && native) for (const fd of fds) closeQuietly(native, fd);
  }
}

interface PendingSend {
  data: Uint8Array;
  fds: readonly number[];
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface FdChannelEvents {
  message: [msg: ReceivedMessage];
  close: [];
  error: [err: Error];
}

/**
 * A connected SOCK_SEQPACKET Unix socket that sends and receives messages
 * with descriptors. Events: 'message' (ReceivedMessage), 'error' (then
 * 'close'), 'close' (either side closed it). The channel reads, and so
 * notices the peer closing, while it has a 'message' listener and is not
 * paused; until then messages wait in the socket. An open channel keeps the
 * event loop alive unless unref()'d.
 */
export class FdChannel extends EventEmitter<FdChannelEvents> {
  private readonly addon: NativeAddon;
  private readonly poller: RawPoller;
  private readonly scratch = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
  private readonly fdScratch = new Int32Array(MAX_FDS_PER_MESSAGE);
  private readonly queue: PendingSend[] = [];
  private paused = false;
  private isClosed = false;
  private events = 0;

  /**
   * Wraps a connected AF_UNIX SOCK_SEQPACKET socket descriptor (as
   * FdListener accepts them); the channel owns it from here on.
   */
  static fromFd(fd: number): FdChannel {
    return new FdChannel(need('FdChannel'), fd);
  }

  /**
   * Connects to a listening FdListener at `path`. A full backlog (EAGAIN) is
   * retried until `timeoutMs`; ENOENT and ECONNREFUSED fail at once.
   */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<FdChannel> {
    const addon = need('FdChannel.connect');
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const fd = addon.unixConnect(socketPath);
      if (fd >= 0) return new FdChannel(addon, fd);
      if (fd !== EAGAIN || Date.now() >= deadline) throw sysError(fd, 'connect', socketPath);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private constructor(
    addon: NativeAddon,
    /** The socket descriptor (owned by the channel). */
    readonly fd: number,
  ) {
    super();
    this.addon = addon;
    this.poller = new addon.Poller(fd, (status, events) => this.onPoll(status, events));
    // Read only while someone listens: messages wait in the socket until then.
    const untyped = this as EventEmitter;
    untyped.on('newListener', (event: string | symbol) => {
      if (event === 'message') process.nextTick(() => this.update());
    });
    untyped.on('removeListener', (event: string | symbol) => {
      if (event === 'message') this.update();
    });
    this.update();
  }

  /** Whether close() was called or the peer went away. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Credentials of the peer (see peerCred). */
  peerCred(): PeerCred {
    return peerCred(this.fd);
  }

  /**
   * Sends one message: `data` (1..MAX_MESSAGE_BYTES bytes) and `fds`
   * (0..253 descriptors, which the receiver gets as new descriptors on the
   * same open files). Resolves when the kernel has the message; until then
   * leave `data` unmodified and the descriptors open (after, the caller may
   * close its copies). Messages go out in order.
   */
  send(data: Uint8Array | string, fds: readonly number[] = []): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.byteLength === 0 || bytes.byteLength > MAX_MESSAGE_BYTES) {
      return Promise.reject(new RangeError(`message size must be 1..${MAX_MESSAGE_BYTES} bytes, got ${bytes.byteLength}`));
    }
    if (fds.length > MAX_FDS_PER_MESSAGE) {
      return Promise.reject(new RangeError(`at most ${MAX_FDS_PER_MESSAGE} descriptors per message`));
    }
    if (this.isClosed) return Promise.reject(sysError(EPIPE, 'sendmsg', '(channel closed)'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ data: bytes, fds, resolve, reject });
      if (this.queue.length === 1) this.flush();
    });
  }

  /** Sends `value` as JSON, with optional descriptors. */
  sendJson(value: unknown, fds: readonly number[] = []): Promise<void> {
    return this.send(JSON.stringify(value), fds);
  }

  /** Stops reading messages (they wait in the socket) until resume(). */
  pause(): void {
    this.paused = true;
    this.update();
  }

  resume(): void {
    this.paused = false;
    this.update();
  }

  /** Lets the process exit while this channel is open. */
  unref(): this {
    if (!this.isClosed) this.poller.setRef(false);
    return this;
  }

  ref(): this {
    if (!this.isClosed) this.poller.setRef(true);
    return this;
  }

  /** Closes the socket; unsent messages fail with EPIPE. Emits 'close' once. */
  close(): void {
    this.destroy(undefined);
  }

  private destroy(err: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.poller.close();
    this.addon.closeFd(this.fd);
    const failed = this.queue.splice(0);
    for (const p of failed) p.reject(err ?? sysError(EPIPE, 'sendmsg', '(channel closed)'));
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
  }

  private update(): void {
    if (this.isClosed) return;
    const reading = !this.paused && this.listenerCount('message') > 0;
    const want = (reading ? this.addon.POLL_READABLE : 0) | (this.queue.length > 0 ? this.addon.POLL_WRITABLE : 0);
    if (want === this.events) return;
    this.events = want;
    const rc = this.poller.start(want);
    if (rc < 0) this.destroy(sysError(rc, 'epoll_ctl'));
  }

  private onPoll(status: number, events: number): void {
    if (this.isClosed) return;
    if (status < 0) {
      this.destroy(sysError(status, 'poll'));
      return;
    }
    if (events & this.addon.POLL_WRITABLE) this.flush();
    if (events & this.addon.POLL_READABLE) this.readAll();
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.isClosed) {
      const p = this.queue[0]!;
      const n = this.addon.sendMsg(this.fd, p.data, p.fds);
      if (n === EAGAIN) break;
      this.queue.shift();
      if (n < 0) {
        const err = sysError(n, 'sendmsg');
        p.reject(err);
        // The peer is gone or the socket is broken: nothing later can go out.
        if (n !== EMSGSIZE) {
          this.destroy(undefined);
          return;
        }
      } else {
        p.resolve();
      }
    }
    this.update();
  }

  private readAll(): void {
    while (!this.paused && !this.isClosed && this.listenerCount('message') > 0) {
      const r = this.addon.recvMsg(this.fd, this.scratch, this.fdScratch);
      if (typeof r === 'number') {
        if (r === EAGAIN) return;
        this.destroy(sysError(r, 'recvmsg'));
        return;
      }
      const fds = Array.from(this.fdScratch.subarray(0, r.nfds));
      if (r.bytes === 0 && fds.length === 0) {
        this.destroy(undefined); // end of file: the peer closed
        return;
      }
      const msg = new ReceivedMessage(Buffer.from(this.scratch.subarray(0, r.bytes)), fds);
      if (r.truncated || r.fdsTruncated) {
        msg.release();
        this.destroy(sysError(EMSGSIZE, 'recvmsg', r.truncated ? '(message truncated)' : '(descriptors truncated)'));
        return;
      }
      try {
        this.emit('message', msg);
      } finally {
        msg.release();
      }
    }
  }
}

export interface FdListenerEvents {
  connection: [channel: FdChannel];
  error: [err: Error];
  close: [];
}

/**
 * A listening SOCK_SEQPACKET Unix socket at a path. Emits 'connection' with
 * an FdChannel per accepted peer (closed at once if nobody listens). Check
 * the peer with channel.peerCred(). close() removes the socket file if it is
 * still the one this listener made.
 */
export class FdListener extends EventEmitter<FdListenerEvents> {
  private readonly addon: NativeAddon;
  private readonly poller: RawPoller;
  private readonly ino: number;
  private isClosed = false;

  /**
   * Binds and listens at `path` (which must not exist). `mode` chmods the
   * socket file afterwards; put it in a 0700 directory to keep others out
   * from the start.
   */
  static listen(socketPath: string, opts: { backlog?: number; mode?: number } = {}): FdListener {
    const addon = need('FdListener.listen');
    const fd = addon.unixListen(socketPath, opts.backlog ?? 128);
    if (fd < 0) throw sysError(fd, 'bind', socketPath);
    try {
      if (opts.mode !== undefined) fs.chmodSync(socketPath, opts.mode);
      return new FdListener(addon, fd, socketPath, fs.statSync(socketPath).ino);
    } catch (err) {
      addon.closeFd(fd);
      throw err;
    }
  }

  private constructor(
    addon: NativeAddon,
    readonly fd: number,
    readonly path: string,
    ino: number,
  ) {
    super();
    this.addon = addon;
    this.ino = ino;
    this.poller = new addon.Poller(fd, (status) => this.onReadable(status));
    const rc = this.poller.start(addon.POLL_READABLE);
    if (rc < 0) {
      this.poller.close();
      addon.closeFd(fd);
      throw sysError(rc, 'epoll_ctl');
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }

  unref(): this {
    if (!this.isClosed) this.poller.setRef(false);
    return this;
  }

  ref(): this {
    if (!this.isClosed) this.poller.setRef(true);
    return this;
  }

  /** Stops listening and removes the socket file (if still ours). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.poller.close();
    this.addon.closeFd(this.fd);
    try {
      if (fs.statSync(this.path).ino === this.ino) fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
    process.nextTick(() => this.emit('close'));
  }

  private onReadable(status: number): void {
    if (this.isClosed) return;
    if (status < 0) {
      this.emit('error', sysError(status, 'poll'));
      return;
    }
    for (;;) {
      const fd = this.addon.unixAccept(this.fd);
      if (fd === EAGAIN) return;
      if (fd === ECONNABORTED) continue;
      if (fd < 0) {
        // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS...): the
        // socket stays readable, so back off instead of spinning, report,
        // and keep listening.
        this.poller.stop();
        setTimeout(() => {
          if (!this.isClosed) this.poller.start(this.addon.POLL_READABLE);
        }, 100).unref();
        if (this.listenerCount('error') > 0) this.emit('error', sysError(fd, 'accept4'));
        return;
      }
      const ch = FdChannel.fromFd(fd);
      if (this.listenerCount('connection') === 0) ch.close();
      else this.emit('connection', ch);
    }
  }
}
