// kill -9 of the server in the middle of UNSTABLE writes.
//
// The server runs as a child process (`tsnfs serve`), the client (hard
// mounted, the default) writes 64 MiB through the write-back cache, the
// server is killed with SIGKILL at some point of the stream and started
// again on the same port and state directory (a new boot: a new write
// verifier). Then fsync and close. Either they fail with an error, or they
// succeed and the file in the export directory is byte for byte what was
// written: what an acknowledged fsync reports is never lost or mixed.
//
// The server runs with --no-localio: this is the RPC path (UNSTABLE WRITE,
// COMMIT, verifier), which a co-located client would otherwise bypass.
//
// Three kill points: early (the writer blocked at a small dirty limit, so it
// waits through the outage), in the middle, and after every WRITE was
// answered (all of it UNSTABLE and uncommitted: the new verifier must make
// the client send it all again).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connect, type NfsClient } from '../../src/client/index.js';
import { freePort, waitForPort } from '../peers/ports.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

interface Setup {
  dir: string;
  state: string;
  exportsFile: string;
  port: number;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** `tsnfs serve` as a child process; resolves once it listens. */
async function startServer(s: Setup): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--exports', s.exportsFile, '--state-dir', s.state, '--port', String(s.port), '--portmap-port', '0', '--log-level', 'warn', '--no-localio'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  child.once('exit', () => live.delete(child));
  await waitForPort(s.port, { timeoutMs: 15_000, abort: () => (child.exitCode !== null ? `tsnfs serve exited (${child.exitCode}): ${stderr}` : false) });
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

let s: Setup;
let server: ChildProcess | undefined;

describe('kill -9 of the server during UNSTABLE writes', { timeout: 300_000 }, () => {
  before(async () => {
    const dir = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-restart-export-')));
    const state = await mkdtemp(join(tmpdir(), 'tsnfs-restart-state-'));
    const exportsFile = join(state, 'exports');
    await writeFile(exportsFile, `${dir} 127.0.0.1(rw,no_root_squash,insecure)\n`);
    s = { dir, state, exportsFile, port: await freePort() };
    server = await startServer(s);
  });

  after(async () => {
    if (server) await kill9(server);
    await rm(s.dir, { recursive: true, force: true });
    await rm(s.state, { recursive: true, force: true });
  });

  const points = [
    // A 16 MiB limit: WRITEs of 4 MiB, and COMMITs to free memory before the kill.
    { name: 'early, the writer waiting at the dirty limit', afterWrites: 4, dirty: { hard: 16 * MiB }, uncommitted: false },
    // Limits above the file: nothing is committed before fsync, so the first instance's answers must all be resent.
    { name: 'in the middle of the stream', afterWrites: 32, dirty: { hard: 256 * MiB, background: 256 * MiB }, uncommitted: true },
    { name: 'after every WRITE was answered, before fsync', afterWrites: SIZE / MiB, dirty: { hard: 256 * MiB, background: 256 * MiB }, uncommitted: true },
  ];

  for (const [i, p] of points.entries()) {
    test(`kill point ${i + 1}: ${p.name}`, async (t) => {
      const url = `nfs://127.0.0.1${s.dir}?nfsport=${s.port}&mountport=${s.port}`;
      const c: NfsClient = await connect(url, { wsize: MiB, dirty: p.dirty });
      const name = `kill-${i + 1}.bin`;
      const data = randomBytes(SIZE);
      let outcome: 'committed' | Error = 'committed';
      let summary = '';
      try {
        const h = await c.open(name, 'w');
        // The application writes 1 MiB at a time; they land in the write-back cache and go out as UNSTABLE WRITEs.
        const writer = (async () => {
          for (let off = 0; off < SIZE; off += MiB) await h.write(data, off, MiB, off);
        })();
        writer.catch(() => undefined);
        await until(() => c.stats().writeback.writes >= p.afterWrites, `${p.afterWrites} WRITE replies`);
        if (p.uncommitted) assert.equal(c.stats().writeback.commits, 0, 'nothing committed before the kill');
        const atKill = c.stats().writeback.writes;
        await kill9(server!);
        await sleep(200); // the client sees the connection drop and retries (hard mount)
        server = await startServer(s);
        try {
          await writer;
          await h.sync();
          await h.close();
        } catch (err) {
          outcome = err as Error;
          await h.close().catch(() => undefined);
        }
        const st = c.stats();
        summary = `killed after ${atKill} WRITE replies; verifier mismatches ${st.writeback.verifierMismatches}, resent ${st.writeback.commitResentBytes} bytes, retransmits ${st.retransmits}`;
        if (outcome === 'committed') {
          const onDisk = await readFile(join(s.dir, name));
          assert.equal(onDisk.length, data.length, 'the file has every byte');
          assert.equal(sha(onDisk), sha(data), 'the file on disk is what was written');
          if (p.uncommitted) {
            assert.ok(st.writeback.verifierMismatches >= 1, 'the restarted server has a new write verifier');
            assert.ok(st.writeback.commitResentBytes >= p.afterWrites * MiB, 'every UNSTABLE write the old instance answered was sent again');
          }
        } else {
          // Failing is allowed; failing silently or with something that is not an error is not.
          assert.ok(outcome instanceof Error && typeof (outcome as { code?: unknown }).code === 'string', `fsync/close failed with a coded error: ${String(outcome)}`);
        }
        // Hard mount: the client reconnected and works after the restart.
        assert.ok(st.retransmits > 0 || st.nfsOps.COMMIT! > 0, 'calls went to the new server instance');
        await c.writeFile(`after-${i + 1}.txt`, 'still mounted');
        assert.equal(await c.readFile(`after-${i + 1}.txt`, 'utf8'), 'still mounted');
      } finally {
        await c.close().catch(() => undefined);
      }
      // Which way it went, for whoever reads the test log.
      t.diagnostic(`kill point ${i + 1}: ${outcome === 'committed' ? 'committed, file verified' : `failed: ${outcome.message}`}; ${summary}`);
    });
  }
});
