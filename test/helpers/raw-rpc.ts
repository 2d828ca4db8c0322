// Hand-built RPC records and a raw socket, for tests that must send what a
// well-behaved client never would.

import net from 'node:net';
import { once } from 'node:events';
import { XdrWriter, XdrReader } from '../../src/xdr/index.js';
import { RecordDecoder, recordMark } from '../../src/rpc/record.js';
import { decodeReplyHeader, type ReplyHeader } from '../../src/rpc/message.js';

export interface RawCall {
  xid: number;
  rpcvers?: number;
  prog: number;
  vers: number;
  proc: number;
  credFlavor?: number;
  credBody?: Buffer;
  args?: Buffer;
}

export function callBody(c: RawCall): Buffer {
  const w = new XdrWriter();
  w.uint(c.xid).uint(0).uint(c.rpcvers ?? 2).uint(c.prog).uint(c.vers).uint(c.proc);
  w.uint(c.credFlavor ?? 0).opaque(c.credBody ?? Buffer.alloc(0));
  w.uint(0).opaque(Buffer.alloc(0));
  return Buffer.concat([w.toBuffer(), c.args ?? Buffer.alloc(0)]);
}

export function callRecord(c: RawCall): Buffer {
  const body = callBody(c);
  return Buffer.concat([recordMark(body.length), body]);
}

export interface RawConn {
  socket: net.Socket;
  /** Resolves with the next reply record. */
  next(timeoutMs?: number): Promise<Buffer>;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
}

export async function rawConnect(port: number, host = '127.0.0.1'): Promise<RawConn> {
  const socket = net.connect({ port, host });
  await once(socket, 'connect');
  const dec = new RecordDecoder(64 << 20);
  const queue: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  socket.on('data', (d: Buffer) => {
    for (const rec of dec.push(d)) {
      const w = waiters.shift();
      if (w) w(rec);
      else queue.push(rec);
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    closed,
    next(timeoutMs = 5000) {
      const q = queue.shift();
      if (q) return Promise.resolve(q);
      return new Promise<Buffer>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reply within timeout')), timeoutMs);
        waiters.push((b) => {
          clearTimeout(t);
          resolve(b);
        });
        void closed.then(() => {
          clearTimeout(t);
          reject(new Error('connection closed'));
        });
      });
    },
  };
}

export function parseReply(rec: Buffer): { head: ReplyHeader; body: XdrReader } {
  const r = new XdrReader(rec);
  return { head: decodeReplyHeader(r), body: r };
}

export function authSysBody(opts: { stamp?: number; machine?: string; uid?: number; gid?: number; gids?: number[] }): Buffer {
  const w = new XdrWriter();
  w.uint(opts.stamp ?? 1).string(opts.machine ?? 'host').uint(opts.uid ?? 0).uint(opts.gid ?? 0);
  w.array(opts.gids ?? [], (x, g) => x.uint(g));
  return w.toBuffer();
}
