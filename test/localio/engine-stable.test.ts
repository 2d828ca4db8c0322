// Stable writes through LOCALIO, checked against a real device and a real
// crash: an XFS on a loop device, whose image file shows what reached the
// "disk", and `xfs_io shutdown`, which stops the file system without
// flushing anything (what a power cut does), followed by log recovery.
//
// - FILE_SYNC and DATA_SYNC writes are on the device when they return;
//   UNSTABLE ones are after COMMIT. The client's typed WRITE and COMMIT go
//   through the LOCALIO transport (the server answers no NFS WRITE or
//   COMMIT).
// - kill -9 of the server, of the client, then the crash: after recovery
//   every byte a stable write, a COMMIT or the file API's sync()
//   acknowledged is in the file.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { stable_how } from '../../src/proto/nfs3.gen.js';
import { noXfs } from '../peers/xfs.js';
import { firstReason } from '../peers/tools.js';
import { ClientChild, noFdPassing } from './helpers.js';
import { bytesWrittenIn, CACHE_MODES, modeOptions, within, xfsExport } from './engine.js';

const KiB = 1024;
const BLOCK = 64 * KiB;
const PAGE = 4 * KiB;

/** Which of `blocks` have every one of their 4 KiB pages somewhere in `file` (pages of a block may land apart). */
function onDevice(file: string, blocks: readonly Buffer[]): boolean[] {
  const pages = blocks.map((b) => Array.from({ length: b.length / PAGE }, (_, i) => b.subarray(i * PAGE, (i + 1) * PAGE)));
  const found = pages.map((ps) => ps.map(() => false));
  const fd = fs.openSync(file, 'r');
  try {
    const CHUNK = 16 * 1024 * 1024;
    const buf = Buffer.alloc(CHUNK + PAGE);
    const size = fs.fstatSync(fd).size;
    for (let pos = 0; pos < size; pos += CHUNK) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      const view = buf.subarray(0, n);
      pages.forEach((ps, b) => ps.forEach((p, i) => (found[b]![i] ||= view.includes(p))));
    }
  } finally {
    fs.closeSync(fd);
  }
  return found.map((f) => f.every(Boolean));
}

interface FhIo {
  transport: string | null;
  status: number;
  count?: number;
  committed?: number;
}

describe('LOCALIO stable writes on XFS, through a crash', { skip: firstReason(noFdPassing(), noXfs()), timeout: 120_000 }, () => {
  const fx = xfsExport('tsnfs-engine-stable', { serve: false });

  for (const mode of CACHE_MODES) {
    test(`[${mode}] FILE_SYNC and DATA_SYNC are durable on return, UNSTABLE after COMMIT; kill -9 and a crash keep them`, async (t) => {
      const { d, xfs } = fx;
      if (!xfs) return t.skip(fx.skipReason);
      const srv = await fx.serve();
      const c = new ClientChild();
      try {
        await c.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: xfs.dir, localioRegistry: d.registry, ...modeOptions(mode) } });
        assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
        const name = `stable-${mode}.bin`;
        await c.call('writeFile', name, Buffer.alloc(0));
        const before = await srv.ops();
        const io = (cmd: Record<string, unknown>): Promise<FhIo> => within(c.do<FhIo>({ op: 'fhio', name, ...cmd }), 30_000, `fhio ${String(cmd['kind'])}`);
        const write = (offset: number, data: Buffer, stable: number): Promise<FhIo> => io({ kind: 'write', offset, data: { b64: data.toString('base64') }, stable });

        const [fileSync, dataSync, unstable, lost] = [0, 1, 2, 3].map(() => randomBytes(BLOCK)) as [Buffer, Buffer, Buffer, Buffer];
        const wf = await write(0, fileSync, stable_how.FILE_SYNC);
        const wd = await write(BLOCK, dataSync, stable_how.DATA_SYNC);
        for (const [w, how] of [
          [wf, stable_how.FILE_SYNC],
          [wd, stable_how.DATA_SYNC],
        ] as const) {
          assert.deepEqual({ transport: w.transport, status: w.status, count: w.count, committed: w.committed }, { transport: 'localio', status: 0, count: BLOCK, committed: how });
        }
        assert.deepEqual(onDevice(xfs.image, [fileSync, dataSync]), [true, true], 'FILE_SYNC and DATA_SYNC data are on the device on return');

        const wu = await write(2 * BLOCK, unstable, stable_how.UNSTABLE);
        assert.equal(wu.transport, 'localio');
        assert.equal(wu.committed, stable_how.UNSTABLE);
        // Not asserted: the kernel's own writeback (or a sync elsewhere on the host) may have flushed it already.
        const early = onDevice(xfs.image, [unstable])[0];
        const cm = await io({ kind: 'commit' });
        assert.deepEqual({ transport: cm.transport, status: cm.status }, { transport: 'localio', status: 0 });
        assert.deepEqual(onDevice(xfs.image, [unstable]), [true], 'UNSTABLE data is on the device after COMMIT');
        await write(3 * BLOCK, lost, stable_how.UNSTABLE); // never committed: may be lost

        // The file API: what a sync() acknowledged, and more after it that nothing acknowledged.
        const viaApi = randomBytes(3 * 1024 * KiB);
        const synced = 2 * 1024 * KiB;
        const h = await c.do<number>({ op: 'open', path: `api-${mode}.bin`, flags: 'w' });
        await within(c.do({ op: 'hcall', h, method: 'write', args: [{ b64: viaApi.subarray(0, synced).toString('base64') }, 0, synced, 0] }), 30_000, 'write');
        await within(c.do({ op: 'hcall', h, method: 'sync' }), 30_000, 'sync');
        await within(c.do({ op: 'hcall', h, method: 'write', args: [{ b64: viaApi.subarray(synced).toString('base64') }, 0, viaApi.length - synced, synced] }), 30_000, 'write');

        const after = await srv.ops();
        for (const p of ['WRITE', 'COMMIT']) assert.equal(after[p] ?? 0, before[p] ?? 0, `server answered NFS ${p}`);
        const s = await c.stats();
        assert.ok(s.localio.writes >= 4 && s.localio.commits >= 1, `local writes ${s.localio.writes}, commits ${s.localio.commits}`);
        assert.equal(s.localio.fallbacks, 0);
        assert.ok(bytesWrittenIn(s.localio.io, mode) > 0, `writes in ${mode} mode: ${JSON.stringify(s.localio.io)}`);

        // kill -9 of the server, then of the client (its descriptors close), then the crash.
        await srv.kill9();
        const file = path.join(xfs.dir, name);
        assert.ok(fs.readFileSync(file).subarray(0, 3 * BLOCK).equals(Buffer.concat([fileSync, dataSync, unstable])), 'the bytes are there after kill -9 of the server');
        c.child.kill('SIGKILL');
        await new Promise((r) => (c.child.exitCode !== null || c.child.signalCode !== null ? r(undefined) : c.child.once('exit', r)));
        await xfs.shutdown();
        await xfs.remount();
        const back = fs.readFileSync(file);
        const lostSurvived = back.length >= 4 * BLOCK && back.subarray(3 * BLOCK, 4 * BLOCK).equals(lost);
        t.diagnostic(`UNSTABLE data on the device before COMMIT: ${early}; uncommitted block survived the crash: ${lostSurvived}; size after recovery ${back.length}`);
        assert.ok(back.length >= 3 * BLOCK, `size after the crash ${back.length}`);
        assert.ok(back.subarray(0, BLOCK).equals(fileSync), 'FILE_SYNC data survived the crash');
        assert.ok(back.subarray(BLOCK, 2 * BLOCK).equals(dataSync), 'DATA_SYNC data survived the crash');
        assert.ok(back.subarray(2 * BLOCK, 3 * BLOCK).equals(unstable), 'committed UNSTABLE data survived the crash');
        const api = fs.readFileSync(path.join(xfs.dir, `api-${mode}.bin`));
        assert.ok(api.length >= synced && api.subarray(0, synced).equals(viaApi.subarray(0, synced)), 'what sync() acknowledged survived the crash');
      } finally {
        await c.exit();
        await fx.stopServer();
      }
    });
  }
});
