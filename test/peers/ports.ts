// Loopback TCP ports: pick free ones, and wait for a server to listen.

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [p] = await freePorts(1, host);
  return p!;
}

/** `n` distinct free ports: all are held open together, so none repeats. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ port: 0, host, exclusive: true }, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

/** Resolves true when something accepts a TCP connection on host:port. */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export interface WaitForPortOptions {
  host?: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** Checked between attempts; a string stops the wait with that message (e.g. "ganesha.nfsd exited"). */
  abort?: () => string | false;
}

/** Polls until host:port accepts a connection; rejects on timeout or when `abort` says so. */
export async function waitForPort(port: number, opts: WaitForPortOptions = {}): Promise<void> {
  const host = opts.host ?? '127.0.0.1';
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const interval = opts.intervalMs ?? 25;
  for (;;) {
    const why = opts.abort?.();
    if (why) throw new Error(why);
    if (await isListening(port, host, 500)) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${opts.timeoutMs ?? 10_000} ms`);
    await sleep(interval);
  }
}
