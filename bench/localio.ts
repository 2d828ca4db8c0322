// npm run bench:localio — file data through the tsnfs client with LOCALIO
// on and off, against the same server (a `tsnfs serve` child process), and
// plain positioned IO from Node on the backing file as the limit:
//
//   4 KiB random reads, 1 and 16 in flight     (ops/s)
//   4 KiB random writes, then fsync            (ops/s, the fsync included):
//                                              BENCH_WRITES distinct blocks
//                                              (default 8192) in random order
//   1 MiB sequential reads                     (MiB/s)
//   1 MiB sequential writes, then fsync        (MiB/s, the fsync included)
//
// The machine is shared and noisy: every point is measured BENCH_ROUNDS
// times (default 5), the targets taking turns within a round, and the
// table shows the median of each.
//
// The file is in the page cache for every read workload (it was just
// written and read). The client reads 4 KiB workloads with rsize=4096 and
// no read-ahead, so each read is one transport read (a READ call, or a
// pread on the granted descriptor); writes go through the write-back cache
// (UNSTABLE WRITEs, then COMMIT), 4 KiB pages for the random writes. The
// limit reads and writes with fs.read / fs.write on a descriptor of its own
// (fsync at the end of the write workloads).
//
// BENCH_SECONDS (default 1) per read point; BENCH_FILE_MIB (default 256).
// Prints a table and the server's NFS READ/WRITE counts for each client
// (LOCALIO on must leave them at zero).
//
// BENCH_PART=modes runs the IO engine's cache modes against fio instead
// (bench/localio-modes.ts); BENCH_PART=all runs both.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connect, type NfsClient, type NfsFileHandle } from '../src/client/index.js';
import { freePorts, waitForPort } from '../test/peers/ports.js';
import { runModes } from './localio-modes.js';
import { timed } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WRITES = Number(process.env.BENCH_WRITES ?? 8192);
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 256);
const FILE_SIZE = FILE_MIB * 1024 * 1024;
const KiB4 = 4096;
const MiB = 1024 * 1024;
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface Setup {
  root: string;
  dir: string;
  registry: string;
  port: number;
  metricsPort: number;
  child: ChildProcess;
}

async function startServer(): Promise<Setup> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-bench-localio-'));
  const dir = path.join(root, 'export');
  const registry = path.join(root, 'registry');
  fs.mkdirSync(dir);
  fs.mkdirSync(registry, { mode: 0o700 });
  const exportsFile = path.join(root, 'exports');
  fs.writeFileSync(exportsFile, `${dir} *(rw,no_root_squash,insecure)\n`);
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--exports', exportsFile, '--port', String(port), '--portmap-port', '0', '--state-dir', path.join(root, 'state'), '--metrics', `127.0.0.1:${metricsPort}`, '--log-level', 'warn', '--localio-registry', registry],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitForPort(port, { timeoutMs: 15_000, abort: () => (child.exitCode !== null ? 'tsnfs serve exited' : false) });
  return { root, dir, registry, port, metricsPort, child };
}

/** The server's NFS READ and WRITE counts (Prometheus endpoint). */
async function serverOps(s: Setup): Promise<{ READ: number; WRITE: number; COMMIT: number }> {
  const text = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  const out = { READ: 0, WRITE: 0, COMMIT: 0 };
  for (const line of text.split('\n')) {
    const m = /^tsnfs_rpc_requests_total\{program="nfs",version="3",procedure="(READ|WRITE|COMMIT)",status="[a-z_]+"\} (\d+)/.exec(line);
    if (m) out[m[1] as keyof typeof out] += Number(m[2]);
  }
  return out;
}

/** Runs `op` in `depth` loops for SECONDS; returns operations per second. */

function randomBlock(): number {
  return Math.floor(Math.random() * (FILE_SIZE / KiB4)) * KiB4;
}

/** WRITES distinct block offsets in random order (a partial Fisher-Yates shuffle). */
function distinctBlocks(): number[] {
  const n = FILE_SIZE / KiB4;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const out: number[] = [];
  for (let i = 0; i < Math.min(WRITES, n); i++) {
    const j = i + Math.floor(Math.random() * (n - i));
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
    out.push(idx[i]! * KiB4);
  }
  return out;
}

// ---------------------------------------------------------------- workloads

interface Target {
  name: string;
  /** Random 4 KiB reads at `depth` in flight; ops/s. */
  randRead(depth: number): Promise<number>;
  /** WRITES random 4 KiB writes to distinct blocks, then fsync; ops/s. */
  randWrite(): Promise<number>;
  /** Sequential 1 MiB reads of the file; MiB/s. */
  seqRead(): Promise<number>;
  /** Sequential 1 MiB writes of a new file of FILE_SIZE, then fsync; MiB/s. */
  seqWrite(): Promise<number>;
  close(): Promise<void>;
}

function promisified<T>(fn: (cb: (err: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

/** Plain Node on the backing file: the limit. */
function plainTarget(s: Setup): Target {
  const file = path.join(s.dir, 'data.bin');
  return {
    name: 'plain Node (limit)',
    async randRead(depth) {
      const fd = fs.openSync(file, 'r');
      const bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(KiB4));
      try {
        return await timed(SECONDS, depth, (w) => promisified<number>((cb) => fs.read(fd, bufs[w]!, 0, KiB4, randomBlock(), cb)).then(() => undefined));
      } finally {
        fs.closeSync(fd);
      }
    },
    async randWrite() {
      const fd = fs.openSync(file, 'r+');
      const buf = randomBytes(KiB4);
      const blocks = distinctBlocks();
      try {
        const start = performance.now();
        for (const pos of blocks) await promisified<number>((cb) => fs.write(fd, buf, 0, KiB4, pos, cb));
        await promisified<void>((cb) => fs.fsync(fd, (err) => cb(err, undefined)));
        return blocks.length / ((performance.now() - start) / 1000);
      } finally {
        fs.closeSync(fd);
      }
    },
    async seqRead() {
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.allocUnsafe(MiB);
      try {
        const start = performance.now();
        for (let pos = 0; pos < FILE_SIZE; pos += MiB) await promisified<number>((cb) => fs.read(fd, buf, 0, MiB, pos, cb));
        return FILE_MIB / ((performance.now() - start) / 1000);
      } finally {
        fs.closeSync(fd);
      }
    },
    async seqWrite() {
      const target = path.join(s.dir, 'seq-plain.bin');
      const fd = fs.openSync(target, 'w');
      const buf = randomBytes(MiB);
      try {
        const start = performance.now();
        for (let pos = 0; pos < FILE_SIZE; pos += MiB) await promisified<number>((cb) => fs.write(fd, buf, 0, MiB, pos, cb));
        await promisified<void>((cb) => fs.fsync(fd, (err) => cb(err, undefined)));
        return FILE_MIB / ((performance.now() - start) / 1000);
      } finally {
        fs.closeSync(fd);
        fs.rmSync(target, { force: true });
      }
    },
    async close() {},
  };
}

async function clientTarget(s: Setup, localio: boolean): Promise<Target> {
  const base = { host: '127.0.0.1', nfsPort: s.port, mountPort: s.port, path: s.dir, localio, localioRegistry: s.registry };
  // One client per access pattern: 4 KiB reads without read-ahead, 4 KiB
  // write-back pages for random writes, the defaults (1 MiB) for streams.
  const small = await connect({ ...base, rsize: KiB4, readahead: 0 });
  const pages = await connect({ ...base, pageSize: KiB4 });
  const large = await connect(base);
  const clients: NfsClient[] = [small, pages, large];
  if (localio) {
    for (const c of clients) if (!(await c.localioReady(5000))) throw new Error('LOCALIO did not come up; is the native addon built?');
  }
  const label = localio ? 'tsnfs client, LOCALIO' : 'tsnfs client, RPC';
  return {
    name: label,
    async randRead(depth) {
      const h = await small.open('data.bin', 'r');
      const bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(KiB4));
      try {
        return await timed(SECONDS, depth, (w) => h.read(bufs[w]!, 0, KiB4, randomBlock()).then(() => undefined));
      } finally {
        await h.close();
      }
    },
    async randWrite() {
      const h = await pages.open('data.bin', 'r+');
      const buf = randomBytes(KiB4);
      const blocks = distinctBlocks();
      try {
        const start = performance.now();
        for (const pos of blocks) await h.write(buf, 0, KiB4, pos);
        await h.sync();
        return blocks.length / ((performance.now() - start) / 1000);
      } finally {
        await h.close();
      }
    },
    async seqRead() {
      const h = await large.open('data.bin', 'r');
      const buf = Buffer.allocUnsafe(MiB);
      try {
        const start = performance.now();
        for (let pos = 0; pos < FILE_SIZE; pos += MiB) await h.read(buf, 0, MiB, pos);
        return FILE_MIB / ((performance.now() - start) / 1000);
      } finally {
        await h.close();
      }
    },
    async seqWrite() {
      const name = `seq-${localio ? 'localio' : 'rpc'}.bin`;
      let h: NfsFileHandle | undefined = await large.open(name, 'w');
      const buf = randomBytes(MiB);
      try {
        const start = performance.now();
        for (let pos = 0; pos < FILE_SIZE; pos += MiB) await h.write(buf, 0, MiB, pos);
        await h.close(); // writes back and commits
        h = undefined;
        return FILE_MIB / ((performance.now() - start) / 1000);
      } finally {
        await h?.close();
        await large.unlink(name);
      }
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

async function main(): Promise<void> {
  const s = await startServer();
  try {
    // The shared file: written once, then read once so it is in the page cache.
    const file = path.join(s.dir, 'data.bin');
    const fd = fs.openSync(file, 'w');
    const chunk = randomBytes(MiB);
    for (let i = 0; i < FILE_MIB; i++) fs.writeSync(fd, chunk, 0, MiB, i * MiB);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const warm = Buffer.allocUnsafe(MiB);
    const rfd = fs.openSync(file, 'r');
    for (let pos = 0; pos < FILE_SIZE; pos += MiB) fs.readSync(rfd, warm, 0, MiB, pos);
    fs.closeSync(rfd);

    const targets = [plainTarget(s), await clientTarget(s, true), await clientTarget(s, false)];
    type Key = 'r1' | 'r16' | 'w' | 'sr' | 'sw';
    const points: Array<[Key, (t: Target) => Promise<number>]> = [
      ['r1', (t) => t.randRead(1)],
      ['r16', (t) => t.randRead(16)],
      ['w', (t) => t.randWrite()],
      ['sr', (t) => t.seqRead()],
      ['sw', (t) => t.seqWrite()],
    ];
    const samples = targets.map(() => ({ r1: [] as number[], r16: [] as number[], w: [] as number[], sr: [] as number[], sw: [] as number[] }));
    const ops = targets.map(() => ({ READ: 0, WRITE: 0, COMMIT: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [key, run] of points) {
        for (let i = 0; i < targets.length; i++) {
          const before = await serverOps(s);
          samples[i]![key].push(await run(targets[i]!));
          const after = await serverOps(s);
          for (const p of ['READ', 'WRITE', 'COMMIT'] as const) ops[i]![p] += after[p] - before[p];
        }
      }
      process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
    }
    for (const t of targets) await t.close();
    const median = (xs: number[]): number => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const rows = targets.map((t, i) => ({
      name: t.name,
      r1: median(samples[i]!.r1),
      r16: median(samples[i]!.r16),
      w: median(samples[i]!.w),
      sr: median(samples[i]!.sr),
      sw: median(samples[i]!.sw),
      ops: i === 0 ? undefined : ops[i],
    }));

    const [plain, lio, rpc] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
    const fmt = (n: number): string => (n >= 100 ? Math.round(n).toString() : n.toFixed(1));
    const head = `LOCALIO: ${FILE_MIB} MiB file in the page cache; medians of ${ROUNDS} rounds, ${SECONDS} s per read point, ${WRITES} random writes (node ${process.version}, ${os.cpus().length} CPUs)`;
    const lines = [
      head,
      'target                   | 4K rand read qd1 | 4K rand read qd16 | 4K rand write+fsync | 1M seq read | 1M seq write+fsync | server READ/WRITE/COMMIT',
      '                         |            ops/s |             ops/s |               ops/s |       MiB/s |              MiB/s |',
    ];
    for (const r of rows) {
      lines.push(
        `${r.name.padEnd(24)} | ${fmt(r.r1).padStart(16)} | ${fmt(r.r16).padStart(17)} | ${fmt(r.w).padStart(19)} | ${fmt(r.sr).padStart(11)} | ${fmt(r.sw).padStart(18)} | ${r.ops ? `${r.ops.READ}/${r.ops.WRITE}/${r.ops.COMMIT}` : '-'}`,
      );
    }
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
    lines.push(
      `LOCALIO / RPC           | ${ratio(lio.r1, rpc.r1).padStart(16)} | ${ratio(lio.r16, rpc.r16).padStart(17)} | ${ratio(lio.w, rpc.w).padStart(19)} | ${ratio(lio.sr, rpc.sr).padStart(11)} | ${ratio(lio.sw, rpc.sw).padStart(18)} |`,
      `LOCALIO / plain Node    | ${ratio(lio.r1, plain.r1).padStart(16)} | ${ratio(lio.r16, plain.r16).padStart(17)} | ${ratio(lio.w, plain.w).padStart(19)} | ${ratio(lio.sr, plain.sr).padStart(11)} | ${ratio(lio.sw, plain.sw).padStart(18)} |`,
    );
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    s.child.kill('SIGTERM');
    await sleep(200);
    fs.rmSync(s.root, { recursive: true, force: true });
  }
}

async function modes(): Promise<void> {
  const s = await startServer();
  try {
    process.stdout.write(await runModes({ dir: s.dir, port: s.port, registry: s.registry }));
  } finally {
    s.child.kill('SIGTERM');
    await sleep(200);
    fs.rmSync(s.root, { recursive: true, force: true });
  }
}

const part = process.env.BENCH_PART ?? 'client';
if (part === 'client' || part === 'all') await main();
if (part === 'modes' || part === 'all') await modes();
