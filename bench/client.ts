// npm run bench:client — the tsnfs client library against libnfs (Debian's
// libnfs-utils), both over RPC to the same `tsnfs serve` child process in
// one run. The server exports a temp directory on the local disk; our client
// runs with LOCALIO off (so file data travels as NFSv3 READ/WRITE/COMMIT)
// and with its default tuning (1 MiB rsize/wsize, read-ahead, write-back
// cache and dirty limits as connect() sets them).
//
// Each measurement runs in a child process of its own (our client in a
// worker node process, libnfs as its command), so no client shares the
// server's event loop.
//
//   seq write   a FILE_MIB local file (on the same disk, in its page cache)
//               copied to a new file on the server: nfs-cp LOCAL URL, vs
//               our worker reading the same local file 1 MiB at a time and
//               writing each piece through handle.write (the write-back
//               cache), then close() (writes back and COMMITs). MiB/s.
//   seq read    the FILE_MIB file on the server copied to a new local file
//               in /dev/shm (tmpfs: no disk in the way; nfs-cp will not
//               write to /dev/null, it creates its target): nfs-cp URL LOCAL,
//               vs `tsnfs cp URL LOCAL` (our CLI, the same kind of command:
//               handle.read into two reused 1 MiB buffers, each written to
//               the local file; localio=0), timed as nfs-cp from spawn to
//               exit, so node's start-up counts against us. A second row:
//               our worker's client.createReadStream (1 MiB pieces, handed
//               out without a copy) piped to fs.createWriteStream of the
//               local file, against the same nfs-cp runs. All end with the
//               same FILE_MIB in tmpfs. MiB/s.
//   rand read   4 KiB reads at random 4 KiB-aligned offsets of that file,
//               16 in flight, for BENCH_SECONDS: ops/s. libnfs-utils has no
//               command for this, so the peer is a 100-line C program on
//               libnfs's asynchronous API (bench/libnfs-randread.c: 16
//               nfs_pread_async in flight on its own event loop), compiled
//               with `cc -lnfs` when libnfs-dev is installed; without it the
//               point reports ours alone. It is the fastest way libnfs
//               offers to do this (no page cache, no per-call thread), so
//               it bounds what a client library can get from this server
//               at this depth. Ours: handle.read of 4 KiB at random
//               offsets, 16 loops in flight, default tuning (a random read
//               that misses the read cache is one READ of its own size).
//   peak RSS    our worker writing BIG_MIB from memory through the
//               write-back cache, then close(); VmHWM of the worker (the
//               whole node process). Target: under 256 MiB. No peer: this
//               is a bound the default dirty limits must keep.
//
// Before the measured rounds, BENCH_WARMUP rounds (default 1) of each point
// run and are dropped: a fresh server reads 2-3x slower for its first
// gigabytes, whichever client asks.
//
// Times: nfs-cp's and the C peer's from spawn to exit (mount included, a
// few ms); our worker's from before connect() to after close() (mount
// included, node's own start-up not). Every point runs BENCH_ROUNDS times,
// the two clients taking turns and alternating who goes first; the table
// shows medians and the server's NFS call counts per client, which show
// that both did the same work (WRITE and COMMIT counts, READ sizes).
// Written files are deleted after each measurement.
//
// Environment: BENCH_FILE_MIB (default 1024), BENCH_BIG_MIB (default
// 4096), BENCH_ROUNDS (default 3), BENCH_WARMUP (default 1), BENCH_SECONDS
// (rand read, default 5), BENCH_POINTS (subset of write,read,rand,rss;
// default all). Quick run: BENCH_FILE_MIB=256 BENCH_BIG_MIB=512
// BENCH_ROUNDS=1 BENCH_SECONDS=2.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/client/index.js';
import { nfsCp, type LibnfsTarget } from '../test/peers/libnfs.js';
import { describeRun, removeOnExit, run } from '../test/peers/proc.js';
import { missing } from '../test/peers/tools.js';
import { median, nfsOpCounts, startTsnfsServe, type TsnfsServe } from './common.js';

const MiB = 1024 * 1024;
const KiB4 = 4096;
const DEPTH = 16;
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 1024);
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 4096);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Math.max(0, Number(process.env.BENCH_WARMUP ?? 1));
const POINTS = new Set((process.env.BENCH_POINTS ?? 'write,read,rand,rss').split(',').map((s) => s.trim()));
const RSS_TARGET_MIB = 256;
const SELF = fileURLToPath(import.meta.url);
const C_PEER = fileURLToPath(new URL('../../bench/libnfs-randread.c', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// ------------------------------------------------------------------ worker

/** What the parent asks of a worker process. */
interface Job {
  op: 'write' | 'read' | 'rand' | 'big';
  port: number;
  exportDir: string;
  /** The file on the server (relative to the export). */
  name: string;
  /** write: the local file to copy. */
  src?: string;
  /** read: the local file to copy to. */
  dst?: string;
  /** big: bytes to write. */
  bytes?: number;
  /** rand: seconds. */
  seconds?: number;
}

interface JobResult {
  seconds: number;
  bytes: number;
  ops: number;
  /** VmHWM of the worker, MiB. */
  peakRssMiB: number;
}

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

async function worker(job: Job): Promise<JobResult> {
  const start = performance.now();
  const client = await connect({ host: '127.0.0.1', nfsPort: job.port, mountPort: job.port, path: job.exportDir, localio: false, uid: 0, gid: 0, gids: [0] });
  let bytes = 0;
  let ops = 0;
  try {
    if (job.op === 'write') {
      const src = await open(job.src!, 'r');
      const h = await client.open(job.name, 'wx');
      const buf = Buffer.allocUnsafe(MiB);
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, MiB, bytes);
        if (bytesRead === 0) break;
        await h.write(buf, 0, bytesRead, bytes);
        bytes += bytesRead;
      }
      await src.close();
      await h.close();
    } else if (job.op === 'read') {
      const src = client.createReadStream(job.name, { highWaterMark: MiB });
      await pipeline(src, fs.createWriteStream(job.dst!, { flags: 'wx' }));
      bytes = src.bytesRead;
    } else if (job.op === 'rand') {
      const h = await client.open(job.name, 'r');
      const blocks = Math.floor((await h.stat()).size / KiB4);
      const end = performance.now() + job.seconds! * 1000;
      await Promise.all(
        Array.from({ length: DEPTH }, async () => {
          const buf = Buffer.allocUnsafe(KiB4);
          while (performance.now() < end) {
            // Math.random, as the C peer's xorshift: the offsets only need to be spread out.
            bytes += (await h.read(buf, 0, KiB4, Math.floor(Math.random() * blocks) * KiB4)).bytesRead;
            ops++;
          }
        }),
      );
      await h.close();
    } else {
      const h = await client.open(job.name, 'wx');
      const buf = randomBytes(MiB);
      for (; bytes < job.bytes!; bytes += MiB) await h.write(buf, 0, MiB, bytes);
      await h.close();
    }
  } finally {
    await client.close();
  }
  return { seconds: (performance.now() - start) / 1000, bytes, ops, peakRssMiB: peakRssMiB() };
}

async function runWorker(job: Job): Promise<JobResult> {
  const r = await run(process.execPath, [SELF, 'worker', JSON.stringify(job)], { timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new Error(`worker failed: ${describeRun(r)}`);
  return JSON.parse(r.stdout) as JobResult;
}

// ------------------------------------------------------------------ parent

interface Sample {
  value: number;
  ops: Record<string, number>;
}

interface Point {
  key: 'write' | 'read' | 'rand';
  title: string;
  unit: string;
  ours: Sample[];
  peer: Sample[];
  peerName: string;
  peerMissing?: string;
}

function diffOps(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}

function fmtOps(o: Record<string, number>): string {
  return ['READ', 'WRITE', 'COMMIT']
    .filter((k) => o[k])
    .map((k) => `${k} ${o[k]}`)
    .join(', ');
}

/**
 * WARMUP rounds (samples dropped), then ROUNDS measured ones, the runs in
 * alternating order; `report` says what a measured round gave (1-based).
 */
async function alternate(points: Point[], runs: () => Array<() => Promise<void>>, report: (round: number) => string): Promise<void> {
  for (let round = -WARMUP; round < ROUNDS; round++) {
    const order = runs();
    if (round % 2) order.reverse();
    for (const fn of order) await fn();
    if (round < 0) {
      for (const p of points) p.ours.length = p.peer.length = 0;
      continue;
    }
    process.stderr.write(`${report(round + 1)}\n`);
  }
}

/** Builds the libnfs random-read peer; a reason when it cannot be built. */
function buildCPeer(dir: string): { bin?: string; why?: string } {
  if (!fs.existsSync('/usr/include/nfsc/libnfs.h')) return { why: 'libnfs headers missing (apt-get install libnfs-dev)' };
  const bin = path.join(dir, 'libnfs-randread');
  const r = spawnSync('cc', ['-O2', '-o', bin, C_PEER, '-lnfs'], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `cc failed: ${r.error?.message ?? r.stderr.trim()}` };
  return { bin };
}

async function main(): Promise<void> {
  const why = missing('nfs-cp');
  if (why) {
    process.stdout.write(`bench:client skipped: ${why}\n`);
    return;
  }
  // A temp dir on the local disk (not tmpfs): the export, the local source file, the server's state.
  const work = await mkdtemp(path.join(os.tmpdir(), 'tsnfs-bench-client-'));
  removeOnExit(work);
  const exportDir = path.join(work, 'export');
  await mkdir(exportDir);
  // Where the reads copy to: tmpfs, so the local side costs both clients only memory copies.
  const shm = await mkdtemp(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'tsnfs-bench-client-'));
  removeOnExit(shm);
  let server: TsnfsServe | undefined;
  try {
    server = await startTsnfsServe({ exportDir, work });
    const srv = server;
    const target = (name: string): LibnfsTarget => ({ exportPath: exportDir, path: name, nfsPort: srv.port, mountPort: srv.port, uid: 0, gid: 0 });
    const counted = async <T>(fn: () => Promise<T>): Promise<[T, Record<string, number>]> => {
      const before = await nfsOpCounts(srv.metricsPort);
      const out = await fn();
      return [out, diffOps(before, await nfsOpCounts(srv.metricsPort))];
    };

    // The source of the copies, and the file the reads read: the same bytes, written locally.
    const source = path.join(work, 'source.bin');
    const dataName = 'data.bin';
    {
      const fd = fs.openSync(source, 'w');
      const chunk = randomBytes(MiB);
      for (let i = 0; i < FILE_MIB; i++) fs.writeSync(fd, chunk, 0, MiB, i * MiB);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.copyFileSync(source, path.join(exportDir, dataName));
    }

    const points: Point[] = [];
    const cPeer = buildCPeer(work);
    let seq = 0;
    const fresh = (who: string): string => `w-${who}-${seq++}.bin`;
    const jobBase = { port: srv.port, exportDir };

    if (POINTS.has('write')) {
      const p: Point = { key: 'write', title: `1 MiB seq write, ${FILE_MIB} MiB + commit`, unit: 'MiB/s', ours: [], peer: [], peerName: 'nfs-cp' };
      points.push(p);
      await alternate([p], () => [
        async () => {
          const name = fresh('ours');
          const [r, ops] = await counted(() => runWorker({ ...jobBase, op: 'write', name, src: source }));
          if (r.bytes !== FILE_MIB * MiB) throw new Error(`ours wrote ${r.bytes} bytes`);
          fs.rmSync(path.join(exportDir, name), { force: true });
          p.ours.push({ value: FILE_MIB / r.seconds, ops });
        },
        async () => {
          const name = fresh('libnfs');
          const [r, ops] = await counted(() => nfsCp(source, target(name), { timeoutMs: 30 * 60_000 }));
          if (r.code !== 0) throw new Error(describeRun(r));
          const size = fs.statSync(path.join(exportDir, name)).size;
          fs.rmSync(path.join(exportDir, name), { force: true });
          if (size !== FILE_MIB * MiB) throw new Error(`nfs-cp wrote ${size} bytes`);
          p.peer.push({ value: FILE_MIB / (r.durationMs / 1000), ops });
        },
      ], (round) => `write round ${round}/${ROUNDS}: ours ${p.ours.at(-1)!.value.toFixed(0)}, nfs-cp ${p.peer.at(-1)!.value.toFixed(0)} MiB/s`);
    }

    if (POINTS.has('read')) {
      const p: Point = { key: 'read', title: `1 MiB seq read, ${FILE_MIB} MiB (cp)`, unit: 'MiB/s', ours: [], peer: [], peerName: 'nfs-cp' };
      // The stream variant, against the same nfs-cp runs.
      const ps: Point = { ...p, title: `1 MiB seq read, ${FILE_MIB} MiB (stream)`, ours: [] };
      points.push(p, ps);
      const url = `nfs://127.0.0.1${exportDir}/${dataName}?nfsport=${srv.port}&mountport=${srv.port}&uid=0&gid=0&localio=0`;
      await alternate([p, ps], () => [
        async () => {
          const dst = path.join(shm, `read-cp-${seq++}.bin`);
          const [r, ops] = await counted(() => run(process.execPath, [CLI, 'cp', url, dst], { timeoutMs: 30 * 60_000 }));
          const size = fs.existsSync(dst) ? fs.statSync(dst).size : -1;
          fs.rmSync(dst, { force: true });
          if (r.code !== 0) throw new Error(describeRun(r));
          if (size !== FILE_MIB * MiB) throw new Error(`tsnfs cp copied ${size} bytes`);
          p.ours.push({ value: FILE_MIB / (r.durationMs / 1000), ops });
        },
        async () => {
          const dst = path.join(shm, `read-ours-${seq++}.bin`);
          const [r, ops] = await counted(() => runWorker({ ...jobBase, op: 'read', name: dataName, dst }));
          const size = fs.statSync(dst).size;
          fs.rmSync(dst, { force: true });
          if (r.bytes !== FILE_MIB * MiB || size !== r.bytes) throw new Error(`ours read ${r.bytes} bytes, copied ${size}`);
          ps.ours.push({ value: FILE_MIB / r.seconds, ops });
        },
        async () => {
          const dst = path.join(shm, `read-libnfs-${seq++}.bin`);
          const [r, ops] = await counted(() => nfsCp(target(dataName), dst, { timeoutMs: 30 * 60_000 }));
          const size = fs.existsSync(dst) ? fs.statSync(dst).size : -1;
          fs.rmSync(dst, { force: true });
          if (r.code !== 0) throw new Error(describeRun(r));
          if (size !== FILE_MIB * MiB) throw new Error(`nfs-cp copied ${size} bytes`);
          p.peer.push({ value: FILE_MIB / (r.durationMs / 1000), ops });
        },
      ], (round) => `read round ${round}/${ROUNDS}: tsnfs cp ${p.ours.at(-1)!.value.toFixed(0)}, stream ${ps.ours.at(-1)!.value.toFixed(0)}, nfs-cp ${p.peer.at(-1)!.value.toFixed(0)} MiB/s`);
    }

    if (POINTS.has('rand')) {
      const p: Point = { key: 'rand', title: `4 KiB rand read, ${DEPTH} in flight`, unit: 'ops/s', ours: [], peer: [], peerName: 'libnfs async (C)', peerMissing: cPeer.why };
      points.push(p);
      await alternate([p], () => [
        async () => {
          const [r, ops] = await counted(() => runWorker({ ...jobBase, op: 'rand', name: dataName, seconds: SECONDS }));
          p.ours.push({ value: r.ops / SECONDS, ops });
        },
        async () => {
          if (!cPeer.bin) return;
          const [r, ops] = await counted(() => run(cPeer.bin!, [`nfs://127.0.0.1${exportDir}/${dataName}?version=3&nfsport=${srv.port}&mountport=${srv.port}&uid=0&gid=0`, String(DEPTH), String(SECONDS)], { timeoutMs: (SECONDS + 60) * 1000 }));
          if (r.code !== 0) throw new Error(describeRun(r));
          const out = JSON.parse(r.stdout) as { ops: number; seconds: number };
          p.peer.push({ value: out.ops / out.seconds, ops });
        },
      ], (round) => `rand round ${round}/${ROUNDS}: ours ${p.ours.at(-1)!.value.toFixed(0)}, libnfs ${p.peer.at(-1)?.value.toFixed(0) ?? '-'} ops/s`);
    }

    let rss: { peak: number; mibs: number; ops: Record<string, number> } | undefined;
    if (POINTS.has('rss')) {
      const name = fresh('big');
      const [r, ops] = await counted(() => runWorker({ ...jobBase, op: 'big', name, bytes: BIG_MIB * MiB }));
      fs.rmSync(path.join(exportDir, name), { force: true });
      rss = { peak: r.peakRssMiB, mibs: BIG_MIB / r.seconds, ops };
    }

    // ---------------------------------------------------------------- table
    const fmt = (n: number): string => (Number.isNaN(n) ? '-' : n >= 100 ? Math.round(n).toString() : n.toFixed(1));
    const lines = [
      `bench:client: tsnfs client (RPC, LOCALIO off) vs libnfs on one tsnfs serve; medians of ${ROUNDS} rounds (node ${process.version}, ${os.cpus().length} CPUs)`,
      `${'point'.padEnd(34)} | ${'ours'.padStart(8)} | ${'libnfs'.padStart(8)} | unit  | ours/libnfs | peer`,
    ];
    for (const p of points) {
      const ours = median(p.ours.map((s) => s.value));
      const peer = median(p.peer.map((s) => s.value));
      const ratio = p.peer.length ? `${(ours / peer).toFixed(2)}x` : '-';
      lines.push(`${p.title.padEnd(34)} | ${fmt(ours).padStart(8)} | ${fmt(peer).padStart(8)} | ${p.unit} | ${ratio.padStart(11)} | ${p.peerMissing ? `skipped: ${p.peerMissing}` : p.peerName}`);
    }
    if (rss) {
      lines.push(
        `${`peak RSS, ${BIG_MIB} MiB write-back`.padEnd(34)} | ${fmt(rss.peak).padStart(8)} | ${'-'.padStart(8)} | MiB   | target < ${RSS_TARGET_MIB} MiB: ${rss.peak < RSS_TARGET_MIB ? 'met' : 'MISSED'} (${fmt(rss.mibs)} MiB/s)`,
      );
    }
    lines.push('', 'server NFS calls per run (first round):');
    for (const p of points) {
      lines.push(`  ${p.title}: ours ${fmtOps(p.ours[0]?.ops ?? {})}; ${p.peerName} ${p.peer[0] ? fmtOps(p.peer[0].ops) : '-'}`);
    }
    if (rss) lines.push(`  ${BIG_MIB} MiB write-back: ours ${fmtOps(rss.ops)}`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
    await rm(shm, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'worker') {
  const result = await worker(JSON.parse(process.argv[3]!) as Job);
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  await main();
}
