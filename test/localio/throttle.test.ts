// Local throttling through LOCALIO (the loop device's PF_LOCAL_THROTTLE
// rule): application writers wait at the client's dirty limit, and the
// engine's writeback never does, so it always drains.
//
// A writer that only copies into the write-back cache is far faster than
// the data path below it. With a 16 MiB limit, 256 MiB written through
// LOCALIO (buffered and direct) must keep the dirty bytes at or under the
// limit at every sample, keep the process's memory bounded, make the writer
// wait (counted), and finish with the right bytes on disk: a writeback that
// waited on the limit it is draining would never finish.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '../../src/client/index.js';
import type { CacheMode } from '../../src/localio/index.js';
import { makeDirs, noFdPassing, startServerChild, type Dirs, type ServerChild } from './helpers.js';

const skip = noFdPassing();
const LIMIT = 16 << 20;
// Smaller than a WRITE (1 MiB), so every write goes through the write-back
// cache: a larger one to a granted file is written through (writeback.ts).
const BLOCK = 1 << 18;
const TOTAL = 256 << 20;

describe('LOCALIO writers are throttled at the dirty limit; writeback is not', { skip, timeout: 180_000 }, () => {
  let d: Dirs;
  let srv: ServerChild;

  before(async () => {
    d = makeDirs();
    srv = await startServerChild(d, { registry: d.registry });
  });

  after(async () => {
    await srv?.stop();
    d?.cleanup();
  });

  test('writes of a WRITE or more to a granted file go straight through: no page held, right bytes, one COMMIT', async () => {
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry, dirty: { hard: LIMIT } });
    try {
      assert.equal(await c.localioReady(5000), true);
      const data = randomBytes(64 << 20);
      const h = await c.open('through.bin', 'w');
      for (let pos = 0; pos < data.length; pos += 1 << 20) await h.write(data, pos, 1 << 20, pos);
      assert.equal(c.stats().writeback.peakDirtyBytes, 0, 'no write-back page was used');
      await h.close();
      assert.ok(fs.readFileSync(path.join(d.exp, 'through.bin')).equals(data));
      assert.equal(c.stats().localio!.commits, 1, 'close still commits');
      assert.equal(c.stats().nfsOps['WRITE'] ?? 0, 0, 'all through LOCALIO');
    } finally {
      await c.close();
    }
  });

  for (const mode of ['buffered', 'direct'] as CacheMode[]) {
    test(`${mode}: 256 MiB through a 16 MiB limit`, async (t) => {
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry, localioWrite: mode, dirty: { hard: LIMIT } });
      try {
        assert.equal(await c.localioReady(5000), true);
        const base = randomBytes(BLOCK);
        const blockOf = (i: number): Buffer => {
          base.writeUInt32BE(i, 0);
          return base;
        };
        global.gc?.();
        const rss0 = process.memoryUsage().rss;
        let peakRss = rss0;
        let peakDirty = 0;
        let samples = 0;
        const timer = setInterval(() => {
          samples++;
          peakDirty = Math.max(peakDirty, c.accountant.used);
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
        }, 5);
        const h = await c.open(`throttle-${mode}.bin`, 'w');
        const start = Date.now();
        try {
          for (let i = 0; i < TOTAL / BLOCK; i++) {
            await h.write(blockOf(i), 0, BLOCK, i * BLOCK);
            peakDirty = Math.max(peakDirty, c.accountant.used);
          }
          await h.close();
        } finally {
          clearInterval(timer);
        }
        const seconds = (Date.now() - start) / 1000;
        const io = c.stats().localio!.io;
        assert.ok(samples > 0);
        assert.ok(peakDirty <= LIMIT, `dirty bytes peaked at ${peakDirty}, over the limit ${LIMIT}`);
        assert.ok(c.accountant.peak <= LIMIT, `the accountant's peak ${c.accountant.peak}`);
        assert.ok(io.dirtyWaits > 0, 'the writer was faster than writeback and waited');
        assert.equal(io.dirtyLimit, LIMIT);
        const pool = io.pool?.bytes ?? 0;
        // The write-back cache (the limit), the pool, and room for the runtime's own churn.
        const bound = 2 * LIMIT + pool + (96 << 20);
        assert.ok(peakRss - rss0 < bound, `RSS grew by ${((peakRss - rss0) / 1048576).toFixed(0)} MiB (bound ${(bound / 1048576).toFixed(0)} MiB)`);
        assert.equal(c.stats().nfsOps['WRITE'] ?? 0, 0, 'all through LOCALIO');
        // Bytes written into the server host's page cache free their pages
        // at once (a server restart cannot lose them): only close commits.
        assert.equal(c.stats().localio!.commits, 1, 'one COMMIT, at close');
        if (mode === 'direct') assert.ok(io.direct.writes > 0);
        // The bytes on disk, block by block.
        const file = path.join(d.exp, `throttle-${mode}.bin`);
        assert.equal(fs.statSync(file).size, TOTAL);
        const fd = fs.openSync(file, 'r');
        const got = Buffer.alloc(BLOCK);
        try {
          for (let i = 0; i < TOTAL / BLOCK; i++) {
            fs.readSync(fd, got, 0, BLOCK, i * BLOCK);
            assert.ok(got.equals(blockOf(i)), `block ${i}`);
          }
        } finally {
          fs.closeSync(fd);
        }
        t.diagnostic(`${mode}: ${(TOTAL / 1048576 / seconds).toFixed(0)} MiB/s, ${io.dirtyWaits} waits at the limit, peak dirty ${(peakDirty / 1048576).toFixed(1)} MiB`);
      } finally {
        await c.close();
      }
    });
  }
});
