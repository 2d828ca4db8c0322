// The LOCALIO engine from the command line: `tsnfs bench` in each mode
// (throughput and the engine's counters, the scratch file removed), and the
// engine's counters in a client verb's --stats with --localio-write.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MAIN, makeDirs, noFdPassing, startServerChild, type Dirs, type ServerChild } from './helpers.js';

const skip = noFdPassing();

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out, err }));
  });
}

interface BenchJson {
  path: string;
  readMode: string;
  writeMode: string;
  write: { bytes: number; ios: number; mibPerSecond: number };
  read: { bytes: number; ios: number; mibPerSecond: number };
  localio: Record<string, { reads: number; writes: number } & Record<string, unknown>> & { queueDepth: number; maxQueueDepth: number; dirtyWaits: number };
  rpc: { READ: number; WRITE: number; COMMIT: number };
}

describe('tsnfs bench and --stats with LOCALIO modes', { skip, timeout: 120_000 }, () => {
  let d: Dirs;
  let srv: ServerChild;
  let url: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    d = makeDirs();
    srv = await startServerChild(d, { registry: d.registry });
    url = `nfs://127.0.0.1${d.exp}?nfsport=${srv.port}&mountport=${srv.port}`;
    env = { TSNFS_LOCALIO_REGISTRY: d.registry };
  });

  after(async () => {
    await srv?.stop();
    d?.cleanup();
  });

  for (const mode of ['buffered', 'dontcache', 'direct']) {
    test(`bench --mode ${mode}: throughput of both phases and the engine's counters, through LOCALIO`, async () => {
      const r = await run(['bench', url, '--mode', mode, '--seconds', '0.3', '--size', '64k', '--depth', '2', '--file-size', '8m', '--dirty', '4m', '--json'], env);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out) as BenchJson;
      assert.equal(j.path, 'localio (channel)');
      assert.equal(j.readMode, mode);
      assert.equal(j.writeMode, mode);
      assert.ok(j.write.ios > 0 && j.write.bytes === j.write.ios * 65536 && j.write.mibPerSecond > 0);
      assert.ok(j.read.ios > 0 && j.read.mibPerSecond > 0);
      assert.deepEqual(j.rpc, { READ: 0, WRITE: 0, COMMIT: 0 });
      const m = j.localio[mode]!;
      assert.ok(m.reads > 0 && m.writes > 0, JSON.stringify(j.localio));
      assert.ok(j.localio.maxQueueDepth >= 1);
      assert.deepEqual(fs.readdirSync(d.exp).filter((n) => n.startsWith('.tsnfs-bench')), [], 'the scratch file is removed');
    });
  }

  test('bench prints a readable report', async () => {
    const r = await run(['bench', url, '--seconds', '0.2', '--size', '4k', '--file-size', '1m', '--workload', 'read'], env);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^tsnfs bench: localio \(channel\), reads buffered, writes buffered; 4096 B per IO, depth 4/m);
    assert.match(r.out, /^read +[0-9.]+ MiB\/s +[0-9]+ IO\/s/m);
    assert.doesNotMatch(r.out, /^write/m);
    assert.match(r.out, /^localio: \{"readMode":"buffered"/m);
  });

  test('cp --stats --localio-write direct: the engine counters in the JSON on stderr', async () => {
    const src = path.join(d.root, 'src.bin');
    const data = randomBytes(3 << 20);
    fs.writeFileSync(src, data);
    const r = await run(['cp', '--no-progress', '--stats', '--localio-write', 'direct', src, `nfs://127.0.0.1${d.exp}/copied.bin?nfsport=${srv.port}&mountport=${srv.port}`], env);
    assert.equal(r.code, 0, r.err);
    const stats = JSON.parse(r.err.trim().split('\n').pop()!) as { localio: { io: { writeMode: string; readMode: string; direct: { writes: number } } } };
    assert.equal(stats.localio.io.writeMode, 'direct');
    assert.equal(stats.localio.io.readMode, 'buffered');
    assert.ok(stats.localio.io.direct.writes >= 3);
    assert.ok(fs.readFileSync(path.join(d.exp, 'copied.bin')).equals(data));
  });
});
