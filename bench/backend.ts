// npm run bench backend — the local backend's metadata loop, with its
// system calls made through the native addon and through Node alone.
//
// 8 loops in flight of CREATE, GETATTR, LOOKUP, REMOVE of a fresh name,
// called straight on a LocalBackend (no RPC): what the server's event loop
// spends per round in the backend. Each measured run is a child process,
// alternately with the addon and with TSNFS_NO_NATIVE=1 (Node's lstatSync
// and fstatSync); the figure is the child's CPU time per round (user +
// system), the median over the runs, and the ratio Node/native (above 1:
// the addon saves CPU).
//
// The directory is in /dev/shm where there is one: on tmpfs a create costs
// the same from run to run, where ext4 without a journal varies it 10x
// with the churn before it (see bench/server.ts).
//
// Environment: BENCH_ROUNDS (runs of each kind, default 5), BENCH_LOOPS
// (rounds per loop and run, default 5000), BENCH_DIR (parent directory).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalBackend } from '../src/fs/local.js';
import type { Cred } from '../src/fs/backend.js';
import { nativeStatus } from '../src/native/index.js';
import { median } from './common.js';

const DEPTH = 8;
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const LOOPS = Math.max(100, Number(process.env.BENCH_LOOPS ?? 5000));

interface RunResult {
  usPerRound: number;
  native: boolean;
}

/** The child: one warm-up and one measured pass over a backend on `root`. */
async function child(root: string, state: string): Promise<RunResult> {
  const be = new LocalBackend({ root, stateDir: state });
  await be.init();
  const cred: Cred = { uid: 0, gid: 0, gids: [0] };
  const dir = (await be.lookup(cred, await be.root(), 'meta')).node;
  const pass = async (loops: number, tag: string): Promise<number> => {
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: DEPTH }, async (_, w) => {
        for (let i = 0; i < loops; i++) {
          const name = `${tag}-${w}-${i}`;
          const made = await be.create(cred, dir, name, { mode: 'unchecked', attrs: { mode: 0o644 } });
          await be.getattr(made.node);
          await be.lookup(cred, dir, name);
          await be.remove(cred, dir, name);
        }
      }),
    );
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / (DEPTH * loops);
  };
  await pass(Math.ceil(LOOPS / 5), 'warm');
  const usPerRound = await pass(LOOPS, 'run');
  await be.close();
  return { usPerRound, native: nativeStatus().available };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    process.stdout.write(`${JSON.stringify(await child(process.argv[3]!, process.argv[4]!))}\n`);
    return;
  }
  if (!nativeStatus().available) {
    console.log(`bench:backend skipped: the native addon is not built (${nativeStatus().reason ?? 'unknown reason'})`);
    return;
  }
  const parent = process.env.BENCH_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
  const work = fs.mkdtempSync(path.join(parent, 'tsnfs-bench-backend-'));
  try {
    const root = path.join(work, 'export');
    fs.mkdirSync(path.join(root, 'meta'), { recursive: true });
    const self = fileURLToPath(import.meta.url);
    const runs: Record<'native' | 'node', number[]> = { native: [], node: [] };
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating which goes first, so a drift of the machine weighs on both.
      const order: ('native' | 'node')[] = r % 2 ? ['node', 'native'] : ['native', 'node'];
      for (const kind of order) {
        const env = { ...process.env, TSNFS_NO_NATIVE: kind === 'node' ? '1' : '' };
        const out = spawnSync(process.execPath, [self, '--child', root, path.join(work, `state-${kind}`)], { env, encoding: 'utf8' });
        if (out.status !== 0) throw new Error(`bench:backend child failed: ${out.stderr}`);
        const res = JSON.parse(out.stdout) as RunResult;
        if (res.native !== (kind === 'native')) throw new Error(`bench:backend: the ${kind} run did not run as asked`);
        runs[kind].push(res.usPerRound);
      }
      process.stderr.write(`round ${r + 1}/${ROUNDS}: native ${runs.native.at(-1)!.toFixed(1)}, node ${runs.node.at(-1)!.toFixed(1)} µs per round\n`);
    }
    const native = median(runs.native);
    const node = median(runs.node);
    console.log(`bench:backend: LocalBackend on ${parent}, ${DEPTH} loops of CREATE/GETATTR/LOOKUP/REMOVE, ${LOOPS} rounds each; medians of ${ROUNDS} runs (node ${process.version})`);
    console.log('CPU per round                      |   native |     node | node/native');
    console.log(`lstat/fstat through the addon      | ${native.toFixed(1).padStart(5)} µs | ${node.toFixed(1).padStart(5)} µs | ${(node / native).toFixed(2).padStart(10)}x`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
