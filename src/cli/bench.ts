// `tsnfs bench URL`: a short write-then-read workload through the client
// (LOCALIO when the server is on this host, RPC otherwise), with the cache
// mode, IO size, depth and duration given, printing throughput and the
// LOCALIO engine's counters.
//
// The URL names a directory on an export; a scratch file is made there and
// removed at the end. Write phase: `depth` writers fill the file with
// `size`-byte writes, sequentially and wrapping at --file-size, for
// --seconds; the file is then synced, and the time includes the sync. The
// client's dirty limit (--dirty) is well below the file size, so writers
// soon wait for writeback: what is measured is the data path, not copies
// into the write-back cache. Read phase:
// `depth` readers read `size` bytes at random aligned offsets of what was
// written, for --seconds, into aligned buffers. What the write phase left
// in the page cache stays there: buffered reads then measure page-cache
// hits, dontcache and direct reads the device.

import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { allocAligned } from '../native/index.js';
import type { NfsClient, NfsFileHandle } from '../client/index.js';
import type { CacheMode } from '../localio/engine.js';
import { emit, isNfsUrl, runVerb, UsageError, withClientOptions, type CommonFlags } from './nfs-session.js';
import { parseBytes, parseCacheModeOption } from './options.js';

interface BenchFlags extends CommonFlags {
  mode?: CacheMode;
  size: number;
  depth: number;
  seconds: number;
  fileSize: number;
  dirty: number;
  workload: 'rw' | 'read' | 'write';
  json?: boolean;
}

export interface PhaseResult {
  bytes: number;
  ios: number;
  seconds: number;
  mibPerSecond: number;
  iops: number;
}

function result(bytes: number, ios: number, ms: number): PhaseResult {
  const seconds = ms / 1000;
  return { bytes, ios, seconds, mibPerSecond: bytes / 1048576 / seconds, iops: ios / seconds };
}

async function writePhase(h: NfsFileHandle, f: BenchFlags): Promise<PhaseResult> {
  const block = randomBytes(f.size);
  const slots = Math.max(1, Math.floor(f.fileSize / f.size));
  let next = 0;
  const start = performance.now();
  const until = start + f.seconds * 1000;
  const writer = async (): Promise<void> => {
    while (performance.now() < until) {
      const k = next++;
      await h.write(block, 0, f.size, (k % slots) * f.size);
    }
  };
  await Promise.all(Array.from({ length: f.depth }, writer));
  await h.sync();
  return result(next * f.size, next, performance.now() - start);
}

async function readPhase(h: NfsFileHandle, f: BenchFlags, extent: number): Promise<PhaseResult> {
  const slots = Math.max(1, Math.floor(extent / f.size));
  let ios = 0;
  let bytes = 0;
  const start = performance.now();
  const until = start + f.seconds * 1000;
  const reader = async (): Promise<void> => {
    const buf = allocAligned(f.size, 4096);
    while (performance.now() < until) {
      const pos = Math.floor(Math.random() * slots) * f.size;
      const { bytesRead } = await h.read(buf, 0, f.size, pos);
      ios++;
      bytes += bytesRead;
    }
  };
  await Promise.all(Array.from({ length: f.depth }, reader));
  return result(bytes, ios, performance.now() - start);
}

function line(name: string, r: PhaseResult): string {
  return `${name.padEnd(6)} ${r.mibPerSecond.toFixed(1).padStart(9)} MiB/s ${Math.round(r.iops).toString().padStart(8)} IO/s  (${(r.bytes / 1048576).toFixed(0)} MiB in ${r.seconds.toFixed(2)} s)\n`;
}

async function bench(client: NfsClient, dir: string, f: BenchFlags): Promise<void> {
  const name = `${dir ? dir + '/' : ''}.tsnfs-bench-${process.pid}`;
  const local = await client.localioReady(2000);
  const l0 = client.stats().localio;
  const out: Record<string, unknown> = {
    path: local ? `localio (${l0?.mode ?? 'channel'})` : 'rpc',
    readMode: l0?.io.readMode,
    writeMode: l0?.io.writeMode,
    size: f.size,
    depth: f.depth,
    seconds: f.seconds,
    fileSize: f.fileSize,
    dirtyLimit: f.dirty,
  };
  const h = await client.open(name, 'w+');
  try {
    let extent = 0;
    if (f.workload !== 'read') {
      const w = await writePhase(h, f);
      out['write'] = w;
      extent = Math.min(f.fileSize, w.bytes);
    } else {
      // Something to read: one pass over the file, not timed.
      const block = randomBytes(f.size);
      for (let pos = 0; pos + f.size <= f.fileSize; pos += f.size) await h.write(block, 0, f.size, pos);
      await h.sync();
      extent = Math.floor(f.fileSize / f.size) * f.size;
    }
    if (f.workload !== 'write') out['read'] = await readPhase(h, f, extent);
  } finally {
    await h.close();
    await client.unlink(name).catch(() => undefined);
  }
  const s = client.stats();
  out['localio'] = s.localio?.io;
  out['rpc'] = { READ: s.nfsOps['READ'] ?? 0, WRITE: s.nfsOps['WRITE'] ?? 0, COMMIT: s.nfsOps['COMMIT'] ?? 0 };
  if (f.json) {
    await emit(JSON.stringify(out) + '\n');
    return;
  }
  let text = `tsnfs bench: ${out['path']}, reads ${out['readMode'] ?? '-'}, writes ${out['writeMode'] ?? '-'}; ${f.size} B per IO, depth ${f.depth}, ${f.seconds} s per phase, file ${f.fileSize} B\n`;
  if (out['write']) text += line('write', out['write'] as PhaseResult);
  if (out['read']) text += line('read', out['read'] as PhaseResult);
  if (s.localio) text += `localio: ${JSON.stringify(s.localio.io)}\n`;
  text += `rpc: ${JSON.stringify(out['rpc'])}\n`;
  await emit(text);
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw new UsageError(`'${v}' is not an integer in 1..4096`);
  return n;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new UsageError(`'${v}' is not a duration in seconds (0 < s <= 3600)`);
  return n;
}

export function benchCommand(program: Command): void {
  withClientOptions(
    program
      .command('bench')
      .description('measure reads and writes through the client (LOCALIO when the server is local) in a scratch file')
      .argument('<url>', 'an nfs:// URL of a directory on an export')
      .option('--mode <mode>', 'LOCALIO cache mode of reads and writes: buffered, dontcache or direct', parseCacheModeOption)
      .option('--size <bytes>', 'bytes per IO (4k, 1m ...)', parseBytes, 1 << 20)
      .option('--depth <n>', 'IOs in flight', positiveInt, 4)
      .option('--seconds <s>', 'duration of each phase', seconds, 3)
      .option('--file-size <bytes>', 'size of the scratch file (writes wrap around in it)', parseBytes, 1 << 30)
      .option('--dirty <bytes>', "the client's dirty limit: writers wait there for writeback", parseBytes, 64 << 20)
      .option('--workload <w>', 'rw (write, then read), read or write', 'rw')
      .option('--json', 'print the results as one JSON object'),
  ).action(async (url: string, o: BenchFlags) => {
    if (!isNfsUrl(url)) throw new UsageError(`'${url}' is not an nfs:// URL`);
    if (o.workload !== 'rw' && o.workload !== 'read' && o.workload !== 'write') throw new UsageError(`--workload must be rw, read or write, not '${o.workload}'`);
    if (o.size > o.fileSize) throw new UsageError('--size is larger than --file-size');
    if (o.mode) {
      o.localioRead ??= o.mode;
      o.localioWrite ??= o.mode;
    }
    await runVerb(
      o,
      async (session) => {
        const t = await session.resolve(url);
        await bench(t.client, t.rel, o);
      },
      { dirty: { hard: o.dirty } },
    );
  });
}
