// BENCH_PART=modes npm run bench:localio — the LOCALIO IO engine in its
// three cache modes against fio (the physical limit), on one file of
// BENCH_FILE_MIB on the file system of the temporary directory:
//
//   4 KiB random read and write, 1, 8 and 32 in flight     (IOPS)
//   1 MiB sequential read and write, SEQ_DEPTH in flight   (MiB/s)
//
// each in buffered, dontcache (RWF_DONTCACHE) and direct (O_DIRECT) mode,
// and fio (libaio, same block size, depth, file and run) buffered and
// direct. fio has no dontcache (see bench/fio.ts): dontcache is held against
// fio direct, the device, which is what an uncached read or write costs.
// Buffered reads find the file in the page cache (fio: invalidate=0).
// Then buffered 4 KiB random reads of the page cache through EngineIo (the
// LOCALIO read path) against plain Node fs.read, and the peak RSS of a
// process that writes then reads a whole file in direct mode, at two file
// sizes: IO memory is the engine's buffers, whatever the file's size.
//
// Through the client, 1 MiB writes go over the same file as fio's (blocks
// already allocated) and end with close (COMMIT: an fsync, which fio's jobs
// do not do); a new file written the same way is reported on its own line.
//
// Targets: direct 1 MiB sequential read and write >= 0.9x fio; direct 4 KiB
// random read at 32 in flight >= 0.7x fio; buffered 4 KiB random read
// >= 0.8x plain Node.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect, type CacheMode, type NfsClient } from '../src/client/index.js';
import { EngineIo, SHARED_ENGINE } from '../src/localio/io.js';
import { IoEngine, allocAligned, dropCachedPages, openODirect, type IoFlags } from '../src/native/index.js';
import { fioVersion, runFio, type FioJob } from './fio.js';
import { timed } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_MODES_ROUNDS ?? 1);
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 256);
const FILE_SIZE = FILE_MIB * 1024 * 1024;
const KiB4 = 4096;
const MiB = 1024 * 1024;
const SEQ_DEPTH = 4;
/** The engine as LOCALIO makes it (src/localio/io.ts sharedLocalIo). */
const ENGINE = SHARED_ENGINE;

type Mode = CacheMode;
const MODES: Mode[] = ['buffered', 'dontcache', 'direct'];

interface Point {
  key: string;
  rw: FioJob['rw'];
  bs: number;
  depth: number;
}

const POINTS: Point[] = [
  ...[1, 8, 32].map((depth) => ({ key: `4K randread qd${depth}`, rw: 'randread' as const, bs: KiB4, depth })),
  ...[1, 8, 32].map((depth) => ({ key: `4K randwrite qd${depth}`, rw: 'randwrite' as const, bs: KiB4, depth })),
  { key: `1M read qd${SEQ_DEPTH}`, rw: 'read', bs: MiB, depth: SEQ_DEPTH },
  { key: `1M write qd${SEQ_DEPTH}`, rw: 'write', bs: MiB, depth: SEQ_DEPTH },
];

function randomBlock(bs: number): number {
  return Math.floor(Math.random() * (FILE_SIZE / bs)) * bs;
}

/** `depth` loops of `op` for SECONDS; operations per second. */

/**
 * The engine on `fd` in `mode`: IOPS for 4 KiB points, MiB/s for 1 MiB ones.
 * Buffered goes through EngineIo, as LOCALIO does (reads try the page
 * cache on the event loop first); dontcache and direct straight to the
 * engine with their flag or descriptor.
 */
async function enginePoint(io: EngineIo, fds: Record<Mode, number>, mode: Mode, p: Point): Promise<number> {
  const fd = fds[mode];
  const flags: IoFlags | undefined = mode === 'dontcache' ? { dontcache: true } : undefined;
  const bufs = Array.from({ length: p.depth }, () => allocAligned(p.bs, KiB4).fill(0x5a));
  const read = p.rw === 'randread' || p.rw === 'read';
  let next = 0;
  const position =
    p.rw === 'randread' || p.rw === 'randwrite'
      ? () => randomBlock(p.bs)
      : () => {
          const at = next;
          next = (next + p.bs) % FILE_SIZE;
          return at;
        };
  const op: (w: number) => Promise<unknown> =
    mode === 'buffered'
      ? read
        ? (w) => io.read(fd, bufs[w]!, 0, p.bs, position())
        : (w) => io.write(fd, [bufs[w]!], position(), 'none')
      : (w) => io.engine.run({ op: read ? 'read' : 'write', fd, buffer: bufs[w]!, position: position(), flags });
  // Operations per second; for 1 MiB blocks that is MiB/s.
  return timed(SECONDS, p.depth, op);
}

/** Reads the whole file, so that it is in the page cache. */
function warm(file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(MiB);
  for (let pos = 0; pos < FILE_SIZE; pos += MiB) fs.readSync(fd, buf, 0, MiB, pos);
  fs.closeSync(fd);
}

async function fioPoint(file: string, direct: boolean, p: Point): Promise<number> {
  const r = await runFio({ filename: file, rw: p.rw, bs: p.bs, iodepth: p.depth, direct, size: FILE_SIZE, seconds: SECONDS });
  return r.iops;
}

/** Buffered 4 KiB random reads of the cached file: EngineIo (LOCALIO's path) and plain fs.read. */
async function cachedReads(file: string, depth: number): Promise<{ engineIo: number; node: number }> {
  const fd = fs.openSync(file, 'r');
  const io = new EngineIo(new IoEngine(ENGINE));
  const bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(KiB4));
  try {
    const engineIo = await timed(SECONDS, depth, (w) => io.read(fd, bufs[w]!, 0, KiB4, randomBlock(KiB4)));
    const node = await timed(
      SECONDS,
      depth,
      (w) => new Promise<number>((resolve, reject) => fs.read(fd, bufs[w]!, 0, KiB4, randomBlock(KiB4), (err, n) => (err ? reject(err) : resolve(n)))),
    );
    return { engineIo, node };
  } finally {
    await io.close();
    fs.closeSync(fd);
  }
}

/**
 * In this process (run as a child): direct-mode 1 MiB writes of a new file
 * of `mib` MiB, SEQ_DEPTH in flight, then reads of all of it; prints the
 * peak RSS in KiB.
 */
async function rssProbe(dir: string, mib: number): Promise<void> {
  const file = path.join(dir, `rss-${mib}.bin`);
  const engine = new IoEngine(ENGINE);
  const fd = openODirect(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC);
  const bufs = Array.from({ length: SEQ_DEPTH }, () => allocAligned(MiB, KiB4).fill(0x33));
  try {
    for (const op of ['write', 'read'] as const) {
      let next = 0;
      await Promise.all(
        bufs.map(async (buffer) => {
          while (next < mib * MiB) {
            const position = next;
            next += MiB;
            await engine.run({ op, fd, buffer, position });
          }
        }),
      );
    }
  } finally {
    fs.closeSync(fd);
    await engine.close();
    fs.rmSync(file, { force: true });
  }
  // VmHWM, the peak of this process image: getrusage's maxrss would count
  // the parent's memory at fork time too (the parent is large here).
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  process.stdout.write(`${JSON.stringify({ maxRssKiB: Number(hwm?.[1] ?? process.resourceUsage().maxRSS) })}\n`);
}

async function peakRss(dir: string, mib: number): Promise<number> {
  const self = fileURLToPath(import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, [self, 'rss-probe', dir, String(mib)], { timeout: 600_000 });
  return (JSON.parse(stdout.trim().split('\n').pop()!) as { maxRssKiB: number }).maxRssKiB;
}

/** A `tsnfs serve` whose export holds the benchmark's file (bench/localio.ts starts it). */
export interface ModesServer {
  /** The exported directory (on the file system measured). */
  dir: string;
  port: number;
  registry: string;
}

const CLIENT_POINTS = POINTS.filter((p) => p.rw !== 'randwrite');

/**
 * Through the tsnfs client with LOCALIO in `mode` (localioRead and
 * localioWrite): random 4 KiB reads (rsize 4 KiB, no read-ahead), 1 MiB
 * sequential reads with SEQ_DEPTH in flight, and 1 MiB writes (SEQ_DEPTH
 * in flight) through the write-back cache, then close (COMMIT): over the
 * benchmark's file (as fio), and (last in the answer) into a new file. Random 4 KiB writes are left to the engine table: through the
 * client they land in its write-back cache and go out as large WRITEs.
 */
async function clientPoints(srv: ModesServer, file: string, mode: Mode, fd: number): Promise<number[]> {
  const base = { host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: srv.dir, localio: true, localioRegistry: srv.registry, localioRead: mode, localioWrite: mode };
  const small = await connect({ ...base, rsize: KiB4, readahead: 0 });
  const large = await connect(base);
  const clients: NfsClient[] = [small, large];
  try {
    for (const c of clients) if (!(await c.localioReady(5000))) throw new Error('LOCALIO did not come up; is the native addon built?');
    const out: number[] = [];
    for (const p of CLIENT_POINTS) {
      // Dirty pages left by earlier write jobs would be written back by this point's COMMIT.
      if (p.rw === 'write') fs.fsyncSync(fd);
      if (mode === 'buffered') warm(file);
      else {
        fs.fsyncSync(fd);
        dropCachedPages(fd);
      }
      if (p.rw === 'write') {
        // The file fio and the engine write: an overwrite of laid-out blocks, as theirs.
        out.push(await clientWrite(large, path.relative(srv.dir, file), 'r+', p.depth));
        continue;
      }
      const c = p.bs === MiB ? large : small;
      const h = await c.open(path.relative(srv.dir, file), 'r');
      const bufs = Array.from({ length: p.depth }, () => allocAligned(p.bs, KiB4));
      let next = 0;
      const position = p.rw === 'randread' ? () => randomBlock(p.bs) : () => {
        const at = next;
        next = (next + p.bs) % FILE_SIZE;
        return at;
      };
      try {
        out.push(await timed(SECONDS, p.depth, (w) => h.read(bufs[w]!, 0, p.bs, position())));
      } finally {
        await h.close();
      }
    }
    // A new file as well: every write extends it (block allocation, and on ext4 extending direct writes run one at a time).
    const name = `client-${mode}.bin`;
    out.push(await clientWrite(large, name, 'w', SEQ_DEPTH));
    await large.unlink(name);
    return out;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** MiB/s of FILE_SIZE in 1 MiB writes (`depth` in flight, at most SECONDS) through the write-back cache, close (COMMIT) included. */
async function clientWrite(c: NfsClient, name: string, flags: 'w' | 'r+', depth: number): Promise<number> {
  const h = await c.open(name, flags);
  const bufs = Array.from({ length: depth }, () => allocAligned(MiB, KiB4).fill(0x77));
  let next = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(
    bufs.map(async (b) => {
      while (performance.now() < end && next < FILE_SIZE) {
        const at = next;
        next += MiB;
        await h.write(b, 0, MiB, at);
      }
    }),
  );
  await h.close(); // writes back and commits
  return next / MiB / ((performance.now() - start) / 1000);
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toString() : n.toFixed(1));

/**
 * Runs the modes benchmark; answers the report (a table per part). With a
 * server, the file is in its export and the client is measured too.
 */
export async function runModes(srv?: ModesServer): Promise<string> {
  const fio = await fioVersion();
  if (!fio) return 'modes: fio is not installed (apt-get install fio); skipped\n';
  const dir = fs.mkdtempSync(path.join(srv?.dir ?? os.tmpdir(), 'tsnfs-bench-modes-'));
  const file = path.join(dir, 'data.bin');
  try {
    const wfd = fs.openSync(file, 'w');
    const chunk = randomBytes(MiB);
    for (let i = 0; i < FILE_MIB; i++) fs.writeSync(wfd, chunk, 0, MiB, i * MiB);
    fs.fsyncSync(wfd);
    fs.closeSync(wfd);

    const buffered = fs.openSync(file, 'r+');
    const fds: Record<Mode, number> = { buffered, dontcache: buffered, direct: openODirect(file, fs.constants.O_RDWR) };
    const io = new EngineIo(new IoEngine(ENGINE));
    // samples[point][column]
    const cols = ['buffered', 'dontcache', 'direct', 'fio buffered', 'fio direct'] as const;
    const samples = POINTS.map(() => Object.fromEntries(cols.map((c) => [c, [] as number[]])) as Record<(typeof cols)[number], number[]>);
    const clientSamples = POINTS.map(() => ({ buffered: [] as number[], dontcache: [] as number[], direct: [] as number[] }));
    const newFileSamples = { buffered: [] as number[], dontcache: [] as number[], direct: [] as number[] };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        for (let i = 0; i < POINTS.length; i++) {
          const p = POINTS[i]!;
          const s = samples[i]!;
          // Buffered runs find the file in the page cache; the others start without it.
          warm(file);
          s.buffered.push(await enginePoint(io, fds, 'buffered', p));
          s['fio buffered'].push(await fioPoint(file, false, p));
          fs.fsyncSync(buffered);
          dropCachedPages(buffered);
          s.dontcache.push(await enginePoint(io, fds, 'dontcache', p));
          fs.fsyncSync(buffered);
          dropCachedPages(buffered);
          s.direct.push(await enginePoint(io, fds, 'direct', p));
          s['fio direct'].push(await fioPoint(file, true, p));
        }
        process.stderr.write(`modes: round ${round + 1}/${ROUNDS} done\n`);
      }
      if (srv) {
        for (let round = 0; round < ROUNDS; round++) {
          for (const m of MODES) {
            const got = await clientPoints(srv, file, m, buffered);
            CLIENT_POINTS.forEach((p, i) => clientSamples[POINTS.indexOf(p)]![m].push(got[i]!));
            newFileSamples[m].push(got[CLIENT_POINTS.length]!);
          }
        }
      }
    } finally {
      await io.close();
      fs.closeSync(fds.direct);
      fs.closeSync(buffered);
    }

    const cached = { engineIo: [] as number[], node: [] as number[] };
    const cachedDepths = [1, 8, 32];
    const cachedRows: string[] = [];
    warm(file);
    for (const depth of cachedDepths) {
      cached.engineIo.length = 0;
      cached.node.length = 0;
      for (let round = 0; round < Math.max(ROUNDS, 3); round++) {
        const r = await cachedReads(file, depth);
        cached.engineIo.push(r.engineIo);
        cached.node.push(r.node);
      }
      const e = median(cached.engineIo);
      const n = median(cached.node);
      cachedRows.push(`qd${String(depth).padEnd(6)} | ${fmt(e).padStart(14)} | ${fmt(n).padStart(15)} | ${(e / n).toFixed(2)}x`);
    }

    const rssSmall = await peakRss(dir, FILE_MIB);
    const rssLarge = await peakRss(dir, FILE_MIB * 4);

    const unit = (p: Point): string => (p.bs === MiB ? 'MiB/s' : 'IOPS');
    const lines = [
      `the IoEngine on a descriptor, by cache mode, vs fio (${fio}, libaio): ${FILE_MIB} MiB file on ${os.tmpdir()}, ${SECONDS} s per point, median of ${ROUNDS}; engine ${ENGINE.threads}-${ENGINE.maxThreads} threads, queue ${ENGINE.queueDepth} (node ${process.version}, ${os.cpus().length} CPUs)`,
      'point             | unit  | buffered | dontcache |   direct | fio buffered | fio direct | buffered/fio | dontcache/fio direct | direct/fio',
    ];
    POINTS.forEach((p, i) => {
      const s = samples[i]!;
      const m = (c: (typeof cols)[number]): number => median(s[c]);
      lines.push(
        `${p.key.padEnd(17)} | ${unit(p).padEnd(5)} | ${fmt(m('buffered')).padStart(8)} | ${fmt(m('dontcache')).padStart(9)} | ${fmt(m('direct')).padStart(8)} | ${fmt(m('fio buffered')).padStart(12)} | ${fmt(m('fio direct')).padStart(10)} | ${`${(m('buffered') / m('fio buffered')).toFixed(2)}x`.padStart(12)} | ${`${(m('dontcache') / m('fio direct')).toFixed(2)}x`.padStart(20)} | ${`${(m('direct') / m('fio direct')).toFixed(2)}x`.padStart(10)}`,
      );
    });
    if (srv) {
      lines.push(
        '',
        `through the tsnfs client, LOCALIO with localioRead/localioWrite = the mode (file in the server's export; 1M writes: over the same file as fio, through the write-back cache, then close/COMMIT)`,
        'point             | unit  | buffered | dontcache |   direct | fio buffered | fio direct | buffered/fio | dontcache/fio direct | direct/fio',
      );
      for (const p of CLIENT_POINTS) {
        const i = POINTS.indexOf(p);
        const c = clientSamples[i]!;
        const f = samples[i]!;
        const b = median(c.buffered);
        const dc = median(c.dontcache);
        const d = median(c.direct);
        const fb = median(f['fio buffered']);
        const fd = median(f['fio direct']);
        lines.push(
          `${p.key.padEnd(17)} | ${unit(p).padEnd(5)} | ${fmt(b).padStart(8)} | ${fmt(dc).padStart(9)} | ${fmt(d).padStart(8)} | ${fmt(fb).padStart(12)} | ${fmt(fd).padStart(10)} | ${`${(b / fb).toFixed(2)}x`.padStart(12)} | ${`${(dc / fd).toFixed(2)}x`.padStart(20)} | ${`${(d / fd).toFixed(2)}x`.padStart(10)}`,
        );
      }
      const nf = (m: Mode): string => fmt(median(newFileSamples[m]));
      lines.push(`1M write qd${SEQ_DEPTH} into a new file (every write extends it), MiB/s: buffered ${nf('buffered')}, dontcache ${nf('dontcache')}, direct ${nf('direct')}`);
    }
    lines.push(
      '',
      'buffered 4K random read of the cached file: EngineIo (LOCALIO read path) vs plain Node fs.read, ops/s',
      'depth    |       EngineIo |  plain fs.read | ratio',
      ...cachedRows,
      '',
      `peak RSS, direct mode, 1 MiB writes then reads of a whole file, ${SEQ_DEPTH} in flight: ${FILE_MIB} MiB file ${(rssSmall / 1024).toFixed(1)} MiB, ${FILE_MIB * 4} MiB file ${(rssLarge / 1024).toFixed(1)} MiB`,
    );
    return lines.join('\n') + '\n';
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'rss-probe') await rssProbe(process.argv[3]!, Number(process.argv[4]));
