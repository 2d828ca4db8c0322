// Loopback TCP ports: pick free ones, and wait for a server to listen.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [p] = await freePorts(1, host);
  return p!;
}

/**
 * `n` distinct free ports: all are held open together, so none repeats.
 * They are picked at random below the kernel's range for source ports
 * (ip_local_port_range), where port 0 would pick them too: a port freed
 * there is soon some connection's source port, and the server meant to
 * listen on it fails with EADDRINUSE.
 */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const [low] = ephemeralRange();
  const servers: net.Server[] = [];
  try {
    for (let tries = 0; servers.length < n; tries++) {
      const srv = net.createServer();
      // Below the source ports when there is room (1024 up), else anywhere (port 0).
      const port = low > 11024 && tries < 200 ? 10000 + Math.floor(Math.random() * (low - 11024)) : 0;
      const ok = await new Promise<boolean>((resolve, reject) => {
        srv.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(false) : reject(err)));
        srv.listen({ port, host, exclusive: true }, () => resolve(true));
      });
      if (ok) servers.push(srv);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

/** The kernel's range of source ports (32768-60999 by default). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: assume the default
  }
  return [32768, 60999];
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
