// Helpers shared by the benchmarks: a `tsnfs serve` child process and its
// Prometheus counters, and the median of a few samples.

import { type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, waitForPort } from '../test/peers/ports.js';
import { isRunning, spawnTracked, stopChild } from '../test/peers/proc.js';

export interface TsnfsServe {
  /** NFS and MOUNT (one port). */
  port: number;
  /** The Prometheus endpoint's port. */
  metricsPort: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface TsnfsServeOptions {
  exportDir: string;
  /** A directory for the exports file and the state directory. */
  work: string;
  /** Extra flags for node (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Extra flags for `tsnfs serve`. */
  serveArgs?: string[];
  /** Another build's dist/src/cli/main.js (default this one's). */
  main?: string;
  /** Serve the Prometheus endpoint (default true). */
  metrics?: boolean;
}

/** `tsnfs serve` exporting `exportDir` read-write to 127.0.0.1 (root not squashed, any source port), logs at warn. */
export async function startTsnfsServe(o: TsnfsServeOptions): Promise<TsnfsServe> {
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  const exportsFile = join(o.work, 'tsnfs.exports');
  await writeFile(exportsFile, `${o.exportDir} 127.0.0.1(rw,sync,no_root_squash,insecure)\n`);
  const main = o.main ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  // bench:server passes metrics: false (it reads no counters)
  const child = spawnTracked(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      main,
      'serve',
      '--exports', exportsFile,
      '--port', String(port),
      '--mount-port', String(port),
      '--portmap-port', '0',
      '--state-dir', join(o.work, 'tsnfs-state'),
      ...(o.metrics === false ? [] : ['--metrics', `127.0.0.1:${metricsPort}`]),
      '--log-level', 'warn',
      ...(o.serveArgs ?? []),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitForPort(port, { timeoutMs: 15_000, abort: () => (isRunning(child) ? false : `tsnfs serve exited (${child.exitCode ?? child.signalCode})`) });
  return { port, metricsPort, child, stop: async () => void (await stopChild(child, 'SIGTERM', 10_000)) };
}

/** The server's NFS call counts by procedure (from its Prometheus endpoint). */
export async function nfsOpCounts(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^tsnfs_rpc_requests_total\{program="nfs",version="3",procedure="([A-Z_]+)",status="[a-z_]+"\} (\d+)/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/** Operations per second with `depth` workers each running `op` back to back for `seconds`. */
export async function timed(seconds: number, depth: number, op: (worker: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: depth }, async (_, w) => {
      while (performance.now() < end) {
        await op(w);
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}
