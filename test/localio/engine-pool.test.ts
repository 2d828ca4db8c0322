// The LOCALIO IO engine runs on a pool of its own, in both directions:
//
// - A client whose libuv threadpool is saturated (every thread stuck in a
//   blocking open of a FIFO nobody writes, as a thread stuck on a slow disk,
//   NFS mount or DNS server would be) still reads, writes and syncs through
//   LOCALIO, promptly, while the pool stays stuck. With the plain-fs IO path
//   (TSNFS_LOCALIO_IO=fs, on that same pool) the same write waits: the
//   property comes from the engine, not from luck.
// - Under heavy LOCALIO load (a client process with writers and readers and
//   many IOs in flight) the server still answers RPC: GETATTR's p99, from
//   another client, stays bounded; the loaded client's own GETATTRs, which
//   share its event loop with the load, are slower but never stuck.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '../../src/client/index.js';
import { ClientChild, dec, makeDirs, noFdPassing, sha, startServerChild, type Dirs, type ServerChild } from './helpers.js';
import { bytesReadIn, bytesWrittenIn, CACHE_MODES, modeOptions, percentile, within, type EngineMode } from './engine.js';

const MiB = 1024 * 1024;
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

  const connectOpts = (mode: EngineMode): Record<string, unknown> => ({
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
  async function withStuckPool(env: NodeJS.ProcessEnv, mode: EngineMode, fn: (c: ClientChild) => Promise<'stuck' | void>): Promise<void> {
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
        assert.ok(bytesWrittenIn(s.localio.io, mode) > 0 && bytesReadIn(s.localio.io, mode) > 0, `IO in ${mode} mode: ${JSON.stringify(s.localio.io)}`);
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

  for (const mode of CACHE_MODES) {
    test(`[${mode}] under heavy LOCALIO load the server answers GETATTR promptly (p99)`, async (t) => {
      fs.writeFileSync(path.join(d.exp, 'load-read.bin'), randomBytes(32 * MiB));
      // The load: a client process of its own. The sampler: another client, here.
      const loader = new ClientChild();
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry });
      try {
        await loader.do({ op: 'connect', opts: connectOpts(mode) });
        assert.equal(await loader.do({ op: 'ready', timeoutMs: 5000 }), true);
        const getattrs = async (ms: number): Promise<number[]> => {
          const out: number[] = [];
          for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 2))) {
            const s = performance.now();
            const r = await c.nfs.call('GETATTR', { object: c.root });
            out.push(performance.now() - s);
            assert.equal(r.status, 0);
          }
          return out;
        };
        const idle = await getattrs(600);
        const before = await srv.ops();
        // 4 writers (write-back: up to 32 WRITEs in flight each) over 16 MiB, 4 readers of 1 MiB.
        const load = within(
          loader.do<{ written: number; read: number; getattrMs: number[] }>({ op: 'load', writers: 4, readers: 4, ms: 2400, span: 16 * MiB, readPath: 'load-read.bin' }),
          30_000,
          'the load',
        );
        await new Promise((r) => setTimeout(r, 200));
        const loaded = await getattrs(2000);
        const r = await load;
        const after = await srv.ops();
        const s = await loader.stats();
        for (const p of ['READ', 'WRITE']) assert.equal(after[p] ?? 0, before[p] ?? 0, `server answered NFS ${p}: the load was not local`);
        assert.equal(s.localio.fallbacks, 0);
        const depth = s.localio.io.maxQueueDepth;
        const ms = (v: number): string => v.toFixed(1);
        const line = (xs: number[]): string => `${ms(percentile(xs, 50))}/${ms(percentile(xs, 99))}/${ms(Math.max(...xs))} ms (${xs.length} calls)`;
        t.diagnostic(
          `GETATTR p50/p99/max from another client: idle ${line(idle)}, under load ${line(loaded)}; from the loaded client itself ${line(r.getattrMs)}; ` +
            `load ${(r.written / MiB / 2.4) | 0} MiB/s written, ${(r.read / MiB / 2.4) | 0} MiB/s read; engine max depth ${depth}`,
        );
        assert.ok(r.written >= 32 * MiB && r.read >= 32 * MiB, `the load ran: ${r.written} written, ${r.read} read`);
        // Buffered reads of cached pages are served on the event loop and never
        // queue in the engine: in the default mode the writers' WRITEs make the depth.
        assert.ok(depth >= 8, `many IOs in flight (max depth ${depth})`);
        assert.ok(bytesWrittenIn(s.localio.io, mode) > 0 && bytesReadIn(s.localio.io, mode) > 0, `IO in ${mode} mode: ${JSON.stringify(s.localio.io)}`);
        // Typically 5-30 ms here; the bounds leave room for a 2-core machine busy with other work.
        // Server work behind the load's IO would take seconds.
        assert.ok(percentile(loaded, 99) < 200, `GETATTR p99 under load ${ms(percentile(loaded, 99))} ms (idle ${ms(percentile(idle, 99))} ms)`);
        // The loaded client's own event loop runs the load too: slower, but never stuck behind its IO.
        assert.ok(r.getattrMs.length >= 20 && Math.max(...r.getattrMs) < 2000, `the loaded client's GETATTRs: ${line(r.getattrMs)}`);
      } finally {
        await c.close();
        await loader.exit();
      }
    });
  }
});
