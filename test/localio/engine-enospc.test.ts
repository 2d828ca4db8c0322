// LOCALIO writes near ENOSPC, on a real XFS (an image on a loop device)
// served by `tsnfs serve`: the file system is filled but for a few MiB, then
// a file larger than what is left is written through LOCALIO.
//
// What applications rely on:
// - every write, sync and close answers (each has a time limit here);
// - the failure is ENOSPC, and it reaches the application at write, sync
//   (fsync) or close, not some other error and not silence;
// - every byte acknowledged by a sync is on disk (read back with plain fs);
// - once files are deleted, writing works again, through LOCALIO.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, NfsStatusError, type NfsClient } from '../../src/client/index.js';
import { nfsstat3, stable_how } from '../../src/proto/nfs3.gen.js';
import { noXfs } from '../peers/xfs.js';
import { firstReason } from '../peers/tools.js';
import { noFdPassing, sha } from './helpers.js';
import { bytesWrittenIn, CACHE_MODES, modeOptions, within, xfsExport } from './engine.js';

const MiB = 1024 * 1024;
/** What is left free before the big write. */
const LEFT = 12 * MiB;
const BIG = 48 * MiB;
const SYNC_EVERY = 4 * MiB;
const OP_LIMIT = 30_000;

describe('LOCALIO writes near ENOSPC on XFS', { skip: firstReason(noFdPassing(), noXfs()), timeout: 240_000 }, () => {
  const fx = xfsExport('tsnfs-engine-enospc');

  for (const mode of CACHE_MODES) {
    test(`[${mode}] ENOSPC reaches the application, synced bytes stay, and space comes back`, async (t) => {
      const { d, xfs, srv } = fx;
      if (!xfs || !srv) return t.skip(fx.skipReason);
      const c: NfsClient = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: xfs.dir, localioRegistry: d.registry, ...modeOptions(mode) });
      try {
        assert.equal(await c.localioReady(5000), true);
        // Through the server, which closes what it holds open of the files.
        for (const name of fs.readdirSync(xfs.dir)) await within(c.rm(name, { force: true }), OP_LIMIT, `rm ${name}`);
        const filler = path.join(xfs.dir, 'filler');
        execFileSync('fallocate', ['-l', String((await xfs.settledFreeBytes()) - LEFT), filler]);
        const free = xfs.freeBytes();
        assert.ok(free < 2 * LEFT, `nearly full: ${free} bytes free`);

        const expected = randomBytes(BIG);
        let acked = 0;
        const failures: { at: string; code: string }[] = [];
        const attempt = async (at: string, p: Promise<unknown>): Promise<boolean> => {
          try {
            await within(p, OP_LIMIT, at);
            return true;
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code ?? String(err);
            failures.push({ at, code });
            return false;
          }
        };
        const raw = await within(c.open('raw.bin', 'w+'), OP_LIMIT, 'open raw.bin'); // made while there is room for an inode
        const h = await within(c.open('big.bin', 'w'), OP_LIMIT, 'open');
        for (let pos = 0; pos < BIG; pos += MiB) {
          if (!(await attempt('write', h.write(expected, pos, MiB, pos)))) break;
          if ((pos + MiB) % SYNC_EVERY === 0) {
            if (!(await attempt('sync', h.sync()))) break;
            acked = pos + MiB;
          }
        }
        await attempt('close', h.close());
        const l1 = c.stats().localio!;
        t.diagnostic(`${free} bytes free; acknowledged ${acked / MiB} MiB; failures ${JSON.stringify(failures)}; local writes ${l1.writes} (${l1.writeBytes} bytes), fallbacks ${l1.fallbacks}`);

        assert.ok(failures.length > 0, `${BIG} bytes into ${free} free bytes must fail somewhere`);
        for (const f of failures) assert.equal(f.code, 'ENOSPC', `the ${f.at} failed with ${f.code}`);
        assert.ok(acked > 0 && acked <= free, `what fitted was acknowledged (${acked} of ${free} free bytes)`);
        assert.ok(l1.writeBytes > 0, 'the writes went through LOCALIO');
        assert.ok(bytesWrittenIn(l1.io, mode) > 0, `writes in ${mode} mode: ${JSON.stringify(l1.io)}`);
        const onDisk = fs.readFileSync(path.join(xfs.dir, 'big.bin'));
        assert.ok(onDisk.length >= acked, `size ${onDisk.length} >= acknowledged ${acked}`);
        assert.equal(sha(onDisk.subarray(0, acked)), sha(expected.subarray(0, acked)), 'every acknowledged byte is on disk');

        // One WRITE through the LOCALIO transport into a full file system: NFS3ERR_NOSPC, or a short count (the rest to send again).
        const t4 = c.transportFor(raw.inode.fh);
        assert.equal(t4.kind, 'localio');
        const rawData = randomBytes(4 * MiB);
        let rawOutcome: string;
        try {
          const r = await within(t4.write(raw.inode.fh, 0, [rawData], rawData.length, stable_how.UNSTABLE), OP_LIMIT, 'WRITE into a full file system');
          assert.ok(r.count < rawData.length, `${r.count} bytes of ${rawData.length} written into a full file system`);
          rawOutcome = `short write of ${r.count}`;
        } catch (err) {
          assert.ok(err instanceof NfsStatusError && err.status === nfsstat3.NFS3ERR_NOSPC, `WRITE failed with ${String(err)}`);
          rawOutcome = 'NFS3ERR_NOSPC';
        }
        t.diagnostic(`a 4 MiB WRITE into the full file system: ${rawOutcome}`);
        await attempt('close raw.bin', raw.close());
        for (const f of failures) assert.equal(f.code, 'ENOSPC', `the ${f.at} failed with ${f.code}`);

        // Many writers at once into what is left: each file is written in
        // full and right, or its writeFile fails with ENOSPC.
        await within(c.rm('big.bin'), OP_LIMIT, 'rm big.bin');
        await within(c.rm('raw.bin'), OP_LIMIT, 'rm raw.bin');
        const left = await xfs.settledFreeBytes();
        if (left > LEFT + MiB) execFileSync('fallocate', ['-l', String(left - LEFT), path.join(xfs.dir, 'filler2')]);
        const pieces = Array.from({ length: 6 }, () => randomBytes(4 * MiB));
        const results = await Promise.allSettled(pieces.map((p, i) => within(c.writeFile(`par${i}.bin`, p), OP_LIMIT, `writeFile par${i}.bin`)));
        const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : ((r.reason as NodeJS.ErrnoException).code ?? String(r.reason))));
        t.diagnostic(`6 x 4 MiB in parallel into ${LEFT} free bytes: ${codes.join(' ')}`);
        assert.ok(codes.includes('ENOSPC'), 'some writer ran out of space');
        for (const [i, code] of codes.entries()) {
          if (code === 'ok') assert.equal(sha(fs.readFileSync(path.join(xfs.dir, `par${i}.bin`))), sha(pieces[i]!), `par${i}.bin, written without error, is right`);
          else assert.equal(code, 'ENOSPC', `par${i}.bin failed with ${code}`);
        }

        // Space back: the same client writes again, locally, all of it.
        for (const name of [...pieces.keys()].map((i) => `par${i}.bin`)) await within(c.rm(name, { force: true }), OP_LIMIT, `rm ${name}`);
        await within(c.rm('filler'), OP_LIMIT, 'rm filler');
        await within(c.rm('filler2', { force: true }), OP_LIMIT, 'rm filler2');
        const again = randomBytes(32 * MiB);
        const before = c.stats().localio!.writeBytes;
        const h2 = await within(c.open('again.bin', 'w'), OP_LIMIT, 'open again.bin');
        for (let pos = 0; pos < again.length; pos += MiB) await within(h2.write(again, pos, MiB, pos), OP_LIMIT, 'write after rm');
        await within(h2.sync(), OP_LIMIT, 'sync after rm');
        await within(h2.close(), OP_LIMIT, 'close after rm');
        assert.equal(sha(fs.readFileSync(path.join(xfs.dir, 'again.bin'))), sha(again), 'written in full once space is back');
        const s = c.stats();
        assert.ok(s.localio!.writeBytes - before >= again.length, 'through LOCALIO');
        assert.equal(s.writeback.dirtyBytes, 0, 'nothing of the failed writes is still held');
      } finally {
        await within(c.close(), OP_LIMIT, 'client close');
      }
    });
  }
});
