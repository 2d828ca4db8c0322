// The LOCALIO IO engine runs on a pool of its own, in both directions:
//
// - A client whose libuv threadpool is saturated (every thread stuck in a
//   blocking open of a FIFO nobody writes, as a thread stuck on a slow disk,
//   NFS mount or DNS server would be) still reads, writes and syncs through
//   LOCALIO, promptly, while the pool stays stuck. With the plain-fs IO path
//   (TSNFS_LOCALIO_IO=fs, on that same pool) the same write waits: the
//   property comes from the engine, not from luck.
// - Under heavy LOCALIO load (writers and readers with many IOs in flight)
//   the mount still answers metadata calls: GETATTR's p99 stays bounded.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, type NfsClient, type NfsFileHandle } from '../../src/client/index.js';
import { sharedLocalIo } from '../../src/localio/io.js';
import { ClientChild, dec, makeDirs, noFdPassing, sha, startServerChild, type Dirs, type ServerChild } from './helpers.js';
import { CACHE_MODES, modeOptions, percentile, within } from './engine.js';

const MiB = 1024 * 1024;
const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const POOL_SIZE = 4;

describe('LOCALIO IO engine: a pool of its own', { skip: noFdPassing(), timeout: 120_000 }, () => {
  let d: Dirs;
  let srv: ServerChild;

  before(async () => {
    d = makeDirs('tsnfs-engine-pool-');
    srv = await startServerChild(d, { registry: d.registry });
  });

  after(async () => {
    await srv?.stop();
    d?.cleanup();
  });

  const connectOpts = (mode: (typeof CACHE_MODES)[number]): Record<string, unknown> => ({
    host: '127.0.0.1',
    nfsPort: srv.port,
    mountPort: srv.port,
    path: d.exp,
    localioRegistry: d.registry,
    ...modeOptions(mode),
  });

  /**
   * A client child whose libuv threadpool is all stuck while `fn` runs.
   * The child answers its commands in order: after a command that waits for
   * the pool, say `stuck` so that nothing more is asked before the release.
   */
  async function withStuckPool(env: NodeJS.ProcessEnv, mode: (typeof CACHE_MODES)[number], fn: (c: ClientChild) => Promise<'stuck' | void>): Promise<void> {
    const fifo = path.join(d.root, `fifo-${Math.random().toString(36).slice(2)}`);
    execFileSync('mkfifo', [fifo]);
    const c = new ClientChild({ env: { ...env, UV_THREADPOOL_SIZE: String(POOL_SIZE) } });
    let blocked = false;
    try {
      await c.do({ op: 'connect', opts: connectOpts(mode) });
      assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true, 'the server is local');
      await c.do({ op: 'block', fifo, count: POOL_SIZE });
      blocked = true;
      const check = await c.do<{ done: boolean }>({ op: 'poolcheck', timeoutMs: 300 });
      assert.equal(check.done, false, 'the libuv threadpool is saturated (an fs.stat does not finish)');
      if ((await fn(c)) !== 'stuck') {
        const still = await c.do<{ done: boolean }>({ op: 'poolcheck', timeoutMs: 50 });
        assert.equal(still.done, false, 'the pool was stuck all along');
      }
    } finally {
      try {
        if (blocked) {
          // A writer opening the FIFO releases every blocked open.
          const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
          await within(c.do({ op: 'unblocked' }), 10_000, 'the blocked opens to finish').finally(() => fs.closeSync(writer));
        }
      } finally {
        await c.exit();
        fs.rmSync(fifo, { force: true });
      }
    }
  }

  for (const mode of CACHE_MODES) {
    test(`[${mode}] with the libuv threadpool stuck, LOCALIO reads, writes and syncs complete promptly`, async (t) => {
      const data = randomBytes(8 * MiB + 17);
      const name = `stuck-${mode}.bin`;
      await withStuckPool({}, mode, async (c) => {
        const before = await srv.ops();
        const start = Date.now();
        const h = await within(c.do<number>({ op: 'open', path: name, flags: 'w+' }), 5000, 'open');
        for (let pos = 0; pos < data.length; pos += MiB) {
          const piece = data.subarray(pos, Math.min(pos + MiB, data.length));
          await within(c.do({ op: 'hcall', h, method: 'write', args: [{ b64: piece.toString('base64') }, 0, piece.length, pos] }), 5000, 'write');
        }
        await within(c.do({ op: 'hcall', h, method: 'sync' }), 5000, 'sync (write-back and COMMIT)');
        const back = await within(c.do<{ bytesRead: number; buffer: unknown }>({ op: 'hcall', h, method: 'read', args: [{ b64: Buffer.alloc(data.length).toString('base64') }, 0, data.length, 0] }), 5000, 'read');
        await within(c.do({ op: 'hcall', h, method: 'close' }), 5000, 'close');
        const ms = Date.now() - start;
        assert.equal(back.bytesRead, data.length);
        assert.equal(sha(dec(back.buffer)), sha(data), 'read back through LOCALIO');
        assert.equal(sha(fs.readFileSync(path.join(d.exp, name))), sha(data), 'on disk');
        const s = await c.stats();
        assert.ok(s.localio.writeBytes >= data.length && s.localio.readBytes >= data.length, `local bytes ${s.localio.writeBytes}/${s.localio.readBytes}`);
        assert.equal(s.localio.fallbacks, 0);
        const after = await srv.ops();
        for (const p of ['READ', 'WRITE', 'COMMIT']) assert.equal(after[p] ?? 0, before[p] ?? 0, `server answered NFS ${p}`);
        // Generous on a loaded 2-core machine; a stuck pool would take forever.
        assert.ok(ms < 10_000, `${ms} ms for 8 MiB written, synced and read`);
        t.diagnostic(`8 MiB written, synced and read back in ${ms} ms with all ${POOL_SIZE} libuv threads stuck`);
      });
    });
  }

  test('control: the plain-fs IO path (TSNFS_LOCALIO_IO=fs) waits for the stuck pool', async () => {
    await withStuckPool({ TSNFS_LOCALIO_IO: 'fs' }, 'default', async (c) => {
      const h = await within(c.do<number>({ op: 'open', path: 'control.bin', flags: 'w+' }), 5000, 'open');
      await c.do({ op: 'hcall', h, method: 'write', args: [{ b64: Buffer.from('stuck').toString('base64') }, 0, 5, 0] });
      const sync = c.do({ op: 'hcall', h, method: 'sync' });
      await assert.rejects(within(sync, 1500, 'sync'), /no answer within/);
      return 'stuck';
    });
  });

  test('under heavy LOCALIO load GETATTR stays prompt (p99)', async (t) => {
    const c: NfsClient = await connect(connectOpts('default') as unknown as Parameters<typeof connect>[0]);
    try {
      assert.equal(await c.localioReady(5000), true);
      const getattrs = async (ms: number): Promise<number[]> => {
        const out: number[] = [];
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const s = performance.now();
          const r = await c.nfs.call('GETATTR', { object: c.root });
          out.push(performance.now() - s);
          assert.equal(r.status, 0);
          await new Promise((r) => setTimeout(r, 2));
        }
        return out;
      };
      const idle = await getattrs(1000);

      // Load: 6 writers (write-back, up to 32 WRITEs in flight each) over
      // 16 MiB files, and 6 readers of 1 MiB at random places of a 32 MiB file.
      const SPAN = 16 * MiB;
      const src = randomBytes(32 * MiB);
      fs.writeFileSync(path.join(d.exp, 'load-read.bin'), src);
      const before = await srv.ops();
      let stop = false;
      let written = 0;
      let read = 0;
      const chunk = randomBytes(MiB);
      const writer = async (i: number): Promise<void> => {
        const h = await c.open(`load-w${i}.bin`, 'w');
        for (let pos = 0; !stop; pos = (pos + MiB) % SPAN) {
          await h.write(chunk, 0, MiB, pos);
          written += MiB;
          await yieldToLoop(); // a write taken by the cache resolves at once: let timers run
        }
        await h.close();
      };
      const reader = async (): Promise<void> => {
        const h: NfsFileHandle = await c.open('load-read.bin', 'r');
        const buf = Buffer.alloc(MiB);
        while (!stop) {
          const pos = Math.floor(Math.random() * 31) * MiB;
          const { bytesRead } = await h.read(buf, 0, MiB, pos);
          assert.equal(bytesRead, MiB);
          read += bytesRead;
          await yieldToLoop();
        }
        await h.close();
      };
      const load = Promise.all([...Array.from({ length: 6 }, (_, i) => writer(i)), ...Array.from({ length: 6 }, () => reader())]);
      let loaded: number[];
      try {
        await new Promise((r) => setTimeout(r, 200));
        loaded = await getattrs(3000);
      } finally {
        stop = true;
        await within(load, 30_000, 'the load to stop');
      }
      const after = await srv.ops();
      for (const p of ['READ', 'WRITE']) assert.equal(after[p] ?? 0, before[p] ?? 0, `server answered NFS ${p}: the load was not local`);
      const l = c.stats().localio!;
      assert.equal(l.fallbacks, 0);
      const io = sharedLocalIo() as { engine?: { stats(): { maxQueueDepth: number } } };
      const depth = io.engine?.stats().maxQueueDepth;
      const p99idle = percentile(idle, 99);
      const p99 = percentile(loaded, 99);
      const mbps = (n: number): string => ((n / MiB / 3.2) | 0).toString();
      t.diagnostic(
        `GETATTR p50/p99/max: idle ${percentile(idle, 50).toFixed(2)}/${p99idle.toFixed(2)}/${Math.max(...idle).toFixed(2)} ms (${idle.length} calls), ` +
          `loaded ${percentile(loaded, 50).toFixed(2)}/${p99.toFixed(2)}/${Math.max(...loaded).toFixed(2)} ms (${loaded.length} calls); ` +
          `load ~${mbps(written)} MiB/s written, ~${mbps(read)} MiB/s read; engine max depth ${depth ?? '?'}`,
      );
      assert.ok(written >= 32 * MiB && read >= 32 * MiB, `the load ran: ${written} written, ${read} read`);
      if (depth !== undefined) assert.ok(depth >= 16, `many IOs in flight (max depth ${depth})`);
      assert.ok(loaded.length >= 100, `GETATTR kept being answered (${loaded.length} calls in 3 s)`);
      assert.ok(p99 < 100, `GETATTR p99 under load ${p99.toFixed(1)} ms (idle ${p99idle.toFixed(1)} ms)`);
    } finally {
      await c.close();
    }
  });
});
