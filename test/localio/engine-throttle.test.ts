// A writer far faster than the disk, through LOCALIO: a client process
// writes 1 GiB (eight passes over a 128 MiB file) to an XFS on a loop device
// with a small dirty limit. Its write-back cache only frees memory when a
// COMMIT (an fsync of the device) returns, so the writer runs at the disk's
// pace. What users rely on:
// - the client's dirty bytes never pass the hard limit, and its resident
//   memory stays bounded (far below what it wrote);
// - the writer is throttled, not failed, and finishes;
// - the file holds exactly the last pass.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { noXfs } from '../peers/xfs.js';
import { firstReason } from '../peers/tools.js';
import { ClientChild, noFdPassing } from './helpers.js';
import { bytesWrittenIn, CACHE_MODES, memoryOf, modeOptions, patternBase, patternChunk, within, xfsExport } from './engine.js';

const MiB = 1024 * 1024;
const HARD = 8 * MiB;
const SPAN = 128 * MiB;
const TOTAL = 1024 * MiB;
/** Under a WRITE's size, so the writes go through the write-back cache (larger ones are written through). */
const CHUNK = MiB / 4;
/** Resident memory the writer may gain over its size after connecting (Node's heap, buffers, the cache's pages). */
const RSS_SLACK = 64 * MiB;

describe('LOCALIO writer faster than the disk', { skip: firstReason(noFdPassing(), noXfs()), timeout: 300_000 }, () => {
  const fx = xfsExport('tsnfs-engine-throttle');

  for (const mode of CACHE_MODES) {
    test(`[${mode}] dirty bytes stay under the hard limit, memory stays bounded, the bytes are right`, async (t) => {
      const { d, xfs, srv } = fx;
      if (!xfs || !srv) return t.skip(fx.skipReason);
      const c = new ClientChild();
      try {
        await c.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: xfs.dir, localioRegistry: d.registry, dirty: { hard: HARD }, ...modeOptions(mode) } });
        assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
        const name = `fill-${mode}.bin`;
        const seed = 0x5eed + name.length;
        const baseline = memoryOf(c.child.pid!).rss;
        const before = await srv.ops();
        const r = await within(c.do<{ ms: number; passes: number }>({ op: 'fill', path: name, total: TOTAL, span: SPAN, chunk: CHUNK, seed }), 240_000, 'the 1 GiB writer');
        const mem = memoryOf(c.child.pid!);
        const s = await c.stats();
        const after = await srv.ops();
        const wb = s.writeback;
        t.diagnostic(
          `1 GiB in ${r.ms} ms (${((TOTAL / MiB / r.ms) * 1000).toFixed(0)} MiB/s); peak dirty ${wb.peakDirtyBytes} of ${wb.hardLimit}; ` +
            `throttled ${wb.throttled} times, ${wb.throttledMs} ms; RSS ${(baseline / MiB).toFixed(0)} MiB after connect, peak ${(mem.peak / MiB).toFixed(0)} MiB`,
        );
        assert.equal(r.passes, TOTAL / SPAN);
        assert.equal(wb.hardLimit, HARD);
        assert.ok(wb.peakDirtyBytes <= HARD, `peak dirty ${wb.peakDirtyBytes} <= hard limit ${HARD}`);
        assert.ok(wb.throttled > 0, 'the writer had to wait for the disk');
        assert.ok(mem.peak - baseline < HARD + RSS_SLACK, `peak RSS grew ${((mem.peak - baseline) / MiB).toFixed(0)} MiB for 1 GiB written`);
        assert.ok(s.localio.writeBytes >= TOTAL, `through LOCALIO: ${s.localio.writeBytes}`);
        assert.equal(s.localio.fallbacks, 0);
        assert.ok(bytesWrittenIn(s.localio.io, mode) >= TOTAL / 2, `writes in ${mode} mode: ${JSON.stringify(s.localio.io)}`);
        assert.equal(after['WRITE'] ?? 0, before['WRITE'] ?? 0, 'the server answered no NFS WRITE');

        // The last pass, everywhere.
        const base = patternBase(seed, CHUNK);
        const want = Buffer.alloc(CHUNK);
        const got = Buffer.alloc(CHUNK);
        const fd = fs.openSync(path.join(xfs.dir, name), 'r');
        try {
          assert.equal(fs.fstatSync(fd).size, SPAN);
          for (let pos = 0; pos < SPAN; pos += CHUNK) {
            assert.equal(fs.readSync(fd, got, 0, CHUNK, pos), CHUNK);
            if (!got.equals(patternChunk(base, r.passes - 1, pos, want))) assert.fail(`wrong bytes at ${pos} (pass ${got.readUInt32LE(0)}, position ${got.readDoubleLE(4)})`);
          }
        } finally {
          fs.closeSync(fd);
        }
        // Through the server, which closes what it holds open of the file: the next mode needs the space.
        await c.call('rm', name);
      } finally {
        await c.exit();
      }
    });
  }
});
