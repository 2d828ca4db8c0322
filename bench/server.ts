// npm run bench:server — tsnfs against nfs-ganesha on loopback, in one run.
//
// Both servers export a directory of their own on one file system, holding
// the same files with the same contents. That file system is a fresh ext4
// (with its journal, as mkfs.ext4 makes it) on a loop device in the temp
// dir: the temp dir's own file system here is ext4 without a journal, where
// a create's cost swings 10x with the churn before it (see metadata below),
// which decided the metadata ratio more than either server did
// (BENCH_FS=tmp measures there anyway). Each
// server runs in its own process (tsnfs as `tsnfs serve`, logs at warn;
// ganesha through the peer harness with a realistic Attr_Expiration_Time).
// The load generator is a raw NFSv3 client on RpcClient in this process:
// MOUNT MNT for the root handle, then the procedures, one TCP connection per
// server. For every workload each server gets a warm-up, then measured
// rounds whose order alternates (tsnfs first, then ganesha first, ...);
// the figures are the mean over the rounds.
//
// Workloads:
//   randread   4 KiB READs at random 4 KiB-aligned offsets of a 256 MiB file
//              (page cache warm), 16 in flight: ops/s, p50/p99 latency
//   seqread    1 MiB READs in order through the same file, 4 in flight: MiB/s
//   seqwrite   1 MiB UNSTABLE WRITEs in order through a second file of the
//              same size (written beforehand, cached), wrapping at its end,
//              4 in flight, then one COMMIT (counted in the time): MiB/s.
//              Overwriting cached pages keeps the figure about the servers:
//              on a VM, extending a file measures how fast the guest gets
//              fresh memory (it varied 2x from run to run), and the dirty
//              data left for COMMIT stays bounded by the file's size.
//   metadata   CREATE, GETATTR, LOOKUP, REMOVE of a fresh name, in a loop,
//              8 loops in flight: ops/s (each procedure counts one).
//              Before each measured point the script times 50 creates (and
//              removes) of its own next to the exports: on ext4 without a
//              journal a create steps over the inodes freed in the last
//              seconds or minutes, and its cost moves between 20 µs and a
//              millisecond with the churn before it, for both servers alike
//              (their directories share a block group). The median is
//              printed with the figures.
//
// Environment:
//   BENCH_SECONDS          seconds per measured point (default 4)
//   BENCH_WARMUP_SECONDS   seconds of warm-up per server and workload (default 1)
//   BENCH_ROUNDS           measured rounds per workload (default 2)
//   BENCH_FILE_MIB         size of the read file (default 256)
//   BENCH_WORKLOADS        comma-separated subset: randread,seqread,seqwrite,metadata
//   BENCH_GANESHA_ATTR     ganesha's Attr_Expiration_Time (default 60)
//   BENCH_TSNFS_NODE_ARGS  extra node flags for the tsnfs process, e.g.
//                          "--cpu-prof --cpu-prof-dir=DIR" (written at its exit)
//   BENCH_FS               ext4 (default: a fresh ext4 on a loop device; the
//                          temp dir's file system when that cannot be made)
//                          or tmp (the temp dir's file system)
//   BENCH_TSNFS_MAIN       another build's dist/src/cli/main.js to measure
//                          (e.g. an older commit, for before/after figures)
//   BENCH_SEND_GROUP       the load's RpcClient sendGroup (default 4, the
//                          client's default; Infinity: a tick's calls in one
//                          write), to check that neither server gains from it
//
// Needs root and nfs-ganesha (see test/peers/ganesha.ts); without them it
// says why and exits.

import { randomBytes, randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, constants as FS, mkdirSync, openSync, truncateSync, unlinkSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hdr from 'hdr-histogram-js';
import { RpcClient, type AuthSys } from '../src/rpc/index.js';
import { NFS_V3_TABLE, type nfs_fh3 } from '../src/proto/nfs3.gen.js';
import { mountCall, nfsCall, sattr, statusName } from '../test/helpers/nfs.js';
import { missingGanesha, startGanesha, type Ganesha } from '../test/peers/ganesha.js';
import { removeOnExit, undoOnExit } from '../test/peers/proc.js';
import { startTsnfsServe } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 256);
const GANESHA_ATTR = Number(process.env.BENCH_GANESHA_ATTR ?? 60);
const WORKLOADS = (process.env.BENCH_WORKLOADS ?? 'randread,seqread,seqwrite,metadata').split(',').map((s) => s.trim()).filter(Boolean);
const TSNFS_NODE_ARGS = (process.env.BENCH_TSNFS_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const TSNFS_MAIN = process.env.BENCH_TSNFS_MAIN;
const FS_KIND = process.env.BENCH_FS ?? 'ext4';
const SEND_GROUP = process.env.BENCH_SEND_GROUP ? Number(process.env.BENCH_SEND_GROUP) : undefined;
/** Room for both exports' files (four of FILE_MIB) and the metadata churn; the image is sparse. */
const FS_IMAGE_MIB = 4 * Number(process.env.BENCH_FILE_MIB ?? 256) + 1024;

const KIB = 1024;
const MIB = 1024 * 1024;
const FILE_BYTES = FILE_MIB * MIB;
const RAND_DEPTH = 16;
const SEQ_DEPTH = 4;
const META_DEPTH = 8;

/** Both servers see root with no squashing (ganesha: Squash = No_Root_Squash). */
const CRED: AuthSys = { stamp: 1, machineName: 'bench', uid: 0, gid: 0, gids: [0] };

// ------------------------------------------------------------- servers

interface Server {
  name: 'tsnfs' | 'ganesha';
  pid: number;
  client: RpcClient;
  root: nfs_fh3;
  /** The read file's handle. */
  file: nfs_fh3;
  /** The write file's handle. */
  wfile: nfs_fh3;
  /** The metadata directory's handle. */
  metaDir: nfs_fh3;
  stop(): Promise<void>;
}

async function connect(name: Server['name'], port: number, mountPort: number, exportPath: string, pid: number, stop: () => Promise<void>): Promise<Server> {
  const mnt = new RpcClient({ host: '127.0.0.1', port: mountPort, prog: 100005, vers: 3, cred: CRED, timeoutMs: 30_000 });
  const m = await mountCall(mnt, 'MNT', exportPath);
  mnt.close();
  if (m.fhs_status !== 0) throw new Error(`${name}: MNT ${exportPath} failed (${m.fhs_status})`);
  const root = { data: Buffer.from(m.mountinfo.fhandle) };
  const client = new RpcClient({ host: '127.0.0.1', port, prog: NFS_V3_TABLE.prog, vers: NFS_V3_TABLE.vers, cred: CRED, timeoutMs: 60_000, sendGroup: SEND_GROUP });
  await client.connect();
  const file = await lookup(client, root, 'data.bin');
  const wfile = await lookup(client, root, 'write.bin');
  const metaDir = await lookup(client, root, 'meta');
  const info = await nfsCall(client, 'FSINFO', { fsroot: root });
  if (info.status !== 0) throw new Error(`${name}: FSINFO: ${statusName(info.status)}`);
  if (info.resok.rtmax < MIB || info.resok.wtmax < MIB) throw new Error(`${name}: rtmax ${info.resok.rtmax}, wtmax ${info.resok.wtmax}: below 1 MiB`);
  return { name, pid, client, root, file, wfile, metaDir, stop };
}

async function lookup(c: RpcClient, dir: nfs_fh3, name: string): Promise<nfs_fh3> {
  const r = await nfsCall(c, 'LOOKUP', { what: { dir, name } });
  if (r.status !== 0) throw new Error(`LOOKUP ${name}: ${statusName(r.status)}`);
  return r.resok.object;
}

/**
 * CPU time of the whole machine that processes account for (user, nice,
 * system; not interrupts, which loopback traffic causes without belonging
 * to a process) plus steal, in seconds (Linux /proc/stat).
 */
async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[7]!) / 100;
}

/** utime + stime of a process, in seconds (Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5); f[0] is field 3.
  return (Number(f[11]) + Number(f[12])) / 100;
}

// ------------------------------------------------------------- workloads

interface Result {
  /** ops/s or MiB/s. */
  rate: number;
  p50Us?: number;
  p99Us?: number;
  /** CPU use while measured, in cores: the server, this process (the client), everything else. */
  serverCpu: number;
  clientCpu: number;
  otherCpu: number;
}

type Workload = (s: Server, ms: number, round: string) => Promise<{ rate: number; hist?: hdr.Histogram }>;

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

function fail(s: Server, what: string, status: number): never {
  throw new Error(`${s.name}: ${what}: ${statusName(status)}`);
}

/** Runs `depth` loops of `step` until the deadline; each step returns the units it did. */
async function loops(depth: number, ms: number, step: (worker: number) => Promise<number>): Promise<{ units: number; secs: number }> {
  const deadline = performance.now() + ms;
  const start = performance.now();
  let units = 0;
  await Promise.all(
    Array.from({ length: depth }, async (_, w) => {
      while (performance.now() < deadline) {
        // Not `units += await ...`: that reads `units` before the await and loses the other loops' counts.
        const n = await step(w);
        units += n;
      }
    }),
  );
  return { units, secs: (performance.now() - start) / 1000 };
}

const randread: Workload = async (s, ms) => {
  const hist = newHistogram();
  const blocks = FILE_BYTES / (4 * KIB);
  const { units, secs } = await loops(RAND_DEPTH, ms, async () => {
    const offset = BigInt(randomInt(blocks) * 4 * KIB);
    const t0 = performance.now();
    const r = await nfsCall(s.client, 'READ', { file: s.file, offset, count: 4 * KIB });
    hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
    if (r.status !== 0) fail(s, 'READ', r.status);
    if (r.resok.count !== 4 * KIB || r.resok.data.length !== 4 * KIB) throw new Error(`${s.name}: short READ (${r.resok.count})`);
    return 1;
  });
  return { rate: units / secs, hist };
};

const seqread: Workload = async (s, ms) => {
  let cursor = 0;
  const { units, secs } = await loops(SEQ_DEPTH, ms, async () => {
    const offset = cursor;
    cursor = (cursor + MIB) % FILE_BYTES;
    const r = await nfsCall(s.client, 'READ', { file: s.file, offset: BigInt(offset), count: MIB });
    if (r.status !== 0) fail(s, 'READ', r.status);
    if (r.resok.data.length !== MIB) throw new Error(`${s.name}: short READ (${r.resok.count})`);
    return MIB;
  });
  return { rate: units / MIB / secs };
};

const WRITE_DATA = randomBytes(MIB);

const seqwrite: Workload = async (s, ms) => {
  const file = s.wfile;
  let cursor = 0;
  let verf: Buffer | undefined;
  const start = performance.now();
  const { units } = await loops(SEQ_DEPTH, ms, async () => {
    const offset = cursor;
    cursor = (cursor + MIB) % FILE_BYTES;
    const r = await nfsCall(s.client, 'WRITE', { file, offset: BigInt(offset), count: MIB, stable: 0, data: WRITE_DATA });
    if (r.status !== 0) fail(s, 'WRITE', r.status);
    if (r.resok.count !== MIB) throw new Error(`${s.name}: short WRITE (${r.resok.count})`);
    verf ??= Buffer.from(r.resok.verf);
    return MIB;
  });
  const cm = await nfsCall(s.client, 'COMMIT', { file, offset: 0n, count: 0 });
  const secs = (performance.now() - start) / 1000;
  if (cm.status !== 0) fail(s, 'COMMIT', cm.status);
  if (verf && !verf.equals(cm.resok.verf)) throw new Error(`${s.name}: the write verifier changed during the run`);
  return { rate: units / MIB / secs };
};

const metadata: Workload = async (s, ms, round) => {
  const seq = new Array<number>(META_DEPTH).fill(0);
  const dir = s.metaDir;
  const { units, secs } = await loops(META_DEPTH, ms, async (w) => {
    const name = `m-${round}-${w}-${seq[w]!++}`;
    const c = await nfsCall(s.client, 'CREATE', { where: { dir, name }, how: { mode: 1, obj_attributes: sattr({ mode: 0o644 }) } });
    if (c.status !== 0) fail(s, `CREATE ${name}`, c.status);
    if (!c.resok.obj) throw new Error(`${s.name}: CREATE ${name} returned no handle`);
    const g = await nfsCall(s.client, 'GETATTR', { object: c.resok.obj });
    if (g.status !== 0) fail(s, 'GETATTR', g.status);
    const l = await nfsCall(s.client, 'LOOKUP', { what: { dir, name } });
    if (l.status !== 0) fail(s, `LOOKUP ${name}`, l.status);
    const r = await nfsCall(s.client, 'REMOVE', { object: { dir, name } });
    if (r.status !== 0) fail(s, `REMOVE ${name}`, r.status);
    return 4;
  });
  return { rate: units / secs };
};

const WORKLOAD_DEFS: Record<string, { title: string; unit: string; run: Workload; latency?: boolean }> = {
  randread: { title: `4 KiB random READ, ${RAND_DEPTH} in flight`, unit: 'ops/s', run: randread, latency: true },
  seqread: { title: `1 MiB sequential READ, ${SEQ_DEPTH} in flight`, unit: 'MiB/s', run: seqread },
  seqwrite: { title: `1 MiB sequential UNSTABLE WRITE + COMMIT, ${SEQ_DEPTH} in flight`, unit: 'MiB/s', run: seqwrite },
  metadata: { title: `CREATE/GETATTR/LOOKUP/REMOVE, ${META_DEPTH} in flight`, unit: 'ops/s', run: metadata },
};

async function measure(s: Server, w: Workload, ms: number, round: string): Promise<Result> {
  const cpu0 = await cpuSeconds(s.pid);
  const busy0 = await machineBusySeconds();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const { rate, hist } = await w(s, ms, round);
  const wall = (performance.now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  const serverCpu = ((await cpuSeconds(s.pid)) - cpu0) / wall;
  const clientCpu = (client.user + client.system) / 1e6 / wall;
  const otherCpu = Math.max(0, ((await machineBusySeconds()) - busy0) / wall - serverCpu - clientCpu);
  const r: Result = { rate, serverCpu, clientCpu, otherCpu };
  if (hist) {
    r.p50Us = hist.getValueAtPercentile(50);
    r.p99Us = hist.getValueAtPercentile(99);
    hist.destroy();
  }
  return r;
}

// ------------------------------------------------------------- main

async function makeExport(dir: string, data: string | undefined): Promise<string[]> {
  await mkdir(dir);
  await mkdir(join(dir, 'meta'));
  const file = join(dir, 'data.bin');
  const wfile = join(dir, 'write.bin');
  if (data) await copyFile(data, file);
  else {
    const f = await open(file, 'w');
    const chunk = randomBytes(4 * MIB);
    for (let off = 0; off < FILE_BYTES; off += chunk.length) await f.write(chunk, 0, Math.min(chunk.length, FILE_BYTES - off), off);
    await f.sync();
    await f.close();
  }
  await copyFile(file, wfile);
  return [file, wfile];
}

/** Reads a file through, so the page cache holds it for both servers. */
async function warmCache(file: string): Promise<void> {
  const f = await open(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MIB);
  for (let off = 0; ; off += buf.length) if ((await f.read(buf, 0, buf.length, off)).bytesRead === 0) break;
  await f.close();
}

/** Microseconds per create (and remove) of an empty file in `dir`, over `n` of them. */
function createCostUs(dir: string, n = 50): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const f = join(dir, `probe-${i}`);
    closeSync(openSync(f, FS.O_CREAT | FS.O_EXCL | FS.O_WRONLY, 0o600));
    unlinkSync(f);
  }
  return ((performance.now() - t0) * 1000) / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

/**
 * A fresh ext4 on a loop device, mounted in `work` and unmounted when this
 * process exits; the temp dir itself where that fails (no root, no loop
 * devices, no mkfs.ext4), saying why.
 */
function mountScratchExt4(work: string): { dir: string; what: string; unmount?: () => void } {
  const image = join(work, 'fs.img');
  const dir = join(work, 'fs');
  const run = (cmd: string, args: string[]): string | undefined => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return r.status === 0 ? undefined : `${cmd}: ${(r.error?.message ?? r.stderr).trim()}`;
  };
  closeSync(openSync(image, 'w'));
  truncateSync(image, FS_IMAGE_MIB * MIB);
  mkdirSync(dir);
  const failed = run('mkfs.ext4', ['-q', '-F', image]) ?? run('mount', ['-o', 'loop', image, dir]);
  if (failed) {
    console.error(`bench:server: no scratch ext4 (${failed}); measuring on the temp dir's file system`);
    return { dir: work, what: 'the temp dir\'s file system (no scratch ext4)' };
  }
  // Lazily: the servers may still hold it while they die.
  const unmount = (): void => void spawnSync('umount', ['-l', dir]);
  undoOnExit(unmount);
  return { dir, what: `a fresh ext4 (journal on) on a loop device, ${FS_IMAGE_MIB} MiB`, unmount };
}

async function main(): Promise<void> {
  const reason = missingGanesha();
  if (reason) {
    console.log(`bench:server needs nfs-ganesha: ${reason}`);
    process.exitCode = 1;
    return;
  }
  for (const w of WORKLOADS) if (!WORKLOAD_DEFS[w]) throw new Error(`unknown workload ${w} (known: ${Object.keys(WORKLOAD_DEFS).join(', ')})`);

  const work = await mkdtemp(join(tmpdir(), 'tsnfs-bench-'));
  const scratch: { dir: string; what: string; unmount?: () => void } = FS_KIND === 'ext4' ? mountScratchExt4(work) : { dir: work, what: 'the temp dir\'s file system' };
  removeOnExit(work);
  const servers: Server[] = [];
  let ganesha: Ganesha | undefined;
  try {
    const tDir = join(scratch.dir, 'tsnfs');
    const gDir = join(scratch.dir, 'ganesha');
    const tFiles = await makeExport(tDir, undefined);
    const gFiles = await makeExport(gDir, tFiles[0]);
    const probeDir = join(scratch.dir, 'probe');
    await mkdir(probeDir);
    const createCosts: number[] = [];
    for (const f of [...tFiles, ...gFiles]) await warmCache(f);

    const tExport = await realpath(tDir);
    const t = await startTsnfsServe({ exportDir: tExport, work, main: TSNFS_MAIN, nodeArgs: TSNFS_NODE_ARGS, metrics: false });
    servers.push(await connect('tsnfs', t.port, t.port, tExport, t.child.pid!, t.stop));
    try {
      ganesha = await startGanesha({ exportDir: gDir, attrExpirationTime: GANESHA_ATTR });
    } catch (err) {
      if (/Cannot register/.test((err as Error).message)) {
        console.error('ganesha cannot register with the portmapper on port 111 (another one holds it?). A private network namespace avoids that:');
        console.error("  unshare -n sh -c 'ip link set lo up && ip addr add 10.255.255.1/32 dev lo && npm run bench:server'");
        console.error('(ganesha resolves 127.0.0.1 with AI_ADDRCONFIG, which wants an address besides 127/8.)');
      }
      throw err;
    }
    const g = ganesha;
    servers.push(await connect('ganesha', g.nfsPort, g.mountPort, g.exportPath, g.pid, () => g.stop()));

    console.log(`tsnfs vs nfs-ganesha over loopback (node ${process.version}); ${SECONDS} s per point, ${ROUNDS} rounds in alternating order, ${WARMUP_SECONDS} s warm-up`);
    console.log(`read file ${FILE_MIB} MiB (page cache warm), ganesha Attr_Expiration_Time=${GANESHA_ATTR}, one connection per server`);
    console.log(`exports on ${scratch.what}`);
    if (TSNFS_MAIN) console.log(`tsnfs: ${TSNFS_MAIN}`);
    console.log('ratio: tsnfs/ganesha for rates; ganesha/tsnfs for latencies (above 1 = tsnfs better).');
    console.log('CPU, in cores: the server process, and the client (this process) while it loaded that server.');
    console.log('');
    const header = `${'workload'.padEnd(58)} | ${'metric'.padEnd(7)} | ${'tsnfs'.padStart(8)} | ${'ganesha'.padStart(8)} | ${'ratio'.padStart(5)} | server CPU t / g | client CPU t / g`;
    let maxOther = 0;
    console.log(header);
    console.log('-'.repeat(header.length));

    let roundNo = 0;
    for (const key of WORKLOADS) {
      const def = WORKLOAD_DEFS[key]!;
      for (const s of servers) await def.run(s, WARMUP_SECONDS * 1000, `warm${roundNo}`);
      const results = new Map<string, Result[]>(servers.map((s) => [s.name, []]));
      for (let r = 0; r < ROUNDS; r++) {
        const order = (roundNo + r) % 2 === 0 ? servers : [...servers].reverse();
        for (const s of order) {
          if (key === 'metadata') createCosts.push(createCostUs(probeDir));
          results.get(s.name)!.push(await measure(s, def.run, SECONDS * 1000, `r${roundNo}-${r}`));
        }
      }
      roundNo++;
      const tr = results.get('tsnfs')!;
      const gr = results.get('ganesha')!;
      const pair = (k: 'serverCpu' | 'clientCpu') => `${mean(tr.map((x) => x[k])).toFixed(2)} / ${mean(gr.map((x) => x[k])).toFixed(2)}`;
      const cpu = `${pair('serverCpu').padStart(16)} | ${pair('clientCpu').padStart(16)}`;
      maxOther = Math.max(maxOther, ...tr.map((x) => x.otherCpu), ...gr.map((x) => x.otherCpu));
      const row = (title: string, metric: string, tv: number, gv: number, ratio: number, extra = '') =>
        console.log(`${title.padEnd(58)} | ${metric.padEnd(7)} | ${fmt(tv).padStart(8)} | ${fmt(gv).padStart(8)} | ${ratio.toFixed(2).padStart(5)} | ${extra}`);
      const tv = mean(tr.map((x) => x.rate));
      const gv = mean(gr.map((x) => x.rate));
      row(def.title, def.unit, tv, gv, tv / gv, cpu);
      if (def.latency) {
        const t50 = mean(tr.map((x) => x.p50Us!));
        const g50 = mean(gr.map((x) => x.p50Us!));
        const t99 = mean(tr.map((x) => x.p99Us!));
        const g99 = mean(gr.map((x) => x.p99Us!));
        row('', 'p50 µs', t50, g50, g50 / t50);
        row('', 'p99 µs', t99, g99, g99 / t99);
      }
      if (process.env.BENCH_VERBOSE) {
        console.log(`  rounds tsnfs:   ${tr.map((x) => fmt(x.rate)).join(' ')}   (other load: ${tr.map((x) => x.otherCpu.toFixed(2)).join(' ')})`);
        console.log(`  rounds ganesha: ${gr.map((x) => fmt(x.rate)).join(' ')}   (other load: ${gr.map((x) => x.otherCpu.toFixed(2)).join(' ')})`);
      }
    }
    console.log('');
    if (createCosts.length > 0) {
      console.log(`A create in this file system cost ${fmt(median(createCosts))} µs (median; ${createCosts.map(fmt).join(', ')} before the metadata points).`);
    }
    if (maxOther > 0.15) console.log(`WARNING: other processes used up to ${maxOther.toFixed(2)} cores during a measured point: these figures are not reliable.`);
    else console.log(`Other processes used at most ${maxOther.toFixed(2)} cores during any measured point.`);
  } finally {
    for (const s of servers) s.client.close();
    for (const s of servers) await s.stop().catch((err: unknown) => console.error(`stopping ${s.name}: ${(err as Error).message}`));
    await ganesha?.stop();
    scratch.unmount?.();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
