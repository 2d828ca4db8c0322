// LOCALIO cache modes end to end: `tsnfs serve` in a child process
// exporting a directory on ext4 (the temp directory, DIO alignment 512), on
// a loop-mounted XFS with 4096-byte sectors (alignment 4096) and on tmpfs
// (no direct IO, no RWF_DONTCACHE); the client here, in each mode.
//
// - Writes at misaligned offsets and lengths (split into head, direct
//   middle and tail; too small for direct; extending the file; past its
//   end) and reads of misaligned ranges into unaligned memory (widened),
//   and short reads at the end of the file: the bytes on disk, read with
//   plain fs, and the bytes read back are right; the counters say which
//   path each took; nothing went over RPC.
// - direct and dontcache leave the file out of the page cache (fincore),
//   buffered leaves it in.
// - stable_how is kept in every mode.
// - Unexport revokes a file's O_DIRECT grant along with its plain one.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { connect, type NfsClient } from '../../src/client/index.js';
import type { CacheMode } from '../../src/localio/index.js';
import { allocAligned } from '../../src/native/index.js';
import { stable_how } from '../../src/proto/nfs3.gen.js';
import { mountTinyTmpfs, mountXfs, type ScratchMount } from '../native/scratch-fs.js';
import { startServer } from '../../src/server/index.js';
import { ClientChild, makeDirs, noFdPassing, startServerChild, type Dirs, type ServerChild } from './helpers.js';

const skip = noFdPassing();
const MODES: CacheMode[] = ['buffered', 'dontcache', 'direct'];

function hasFincore(): boolean {
  try {
    execFileSync('fincore', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Bytes of `file` in the page cache. */
function resident(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

interface Fs {
  name: 'ext4' | 'xfs' | 'tmpfs';
  dir: string;
  /** Direct IO and RWF_DONTCACHE work there. */
  cacheControl: boolean;
}

describe('LOCALIO cache modes on ext4, XFS (4096) and tmpfs', { skip, timeout: 300_000 }, () => {
  let d: Dirs;
  let srv: ServerChild;
  const mounts: ScratchMount[] = [];
  const filesystems: Fs[] = [];
  const skipped: string[] = [];

  before(async () => {
    d = makeDirs();
    filesystems.push({ name: 'ext4', dir: d.exp, cacheControl: fs.statfsSync(d.exp).type === 0xef53 });
    const xfs = await mountXfs({ sectorSize: 4096 });
    if (typeof xfs === 'string') skipped.push(xfs);
    else {
      mounts.push(xfs);
      fs.chmodSync(xfs.dir, 0o777);
      filesystems.push({ name: 'xfs', dir: xfs.dir, cacheControl: true });
    }
    const tmp = await mountTinyTmpfs(128 * 1024);
    if (typeof tmp === 'string') skipped.push(tmp);
    else {
      mounts.push(tmp);
      fs.chmodSync(tmp.dir, 0o777);
      filesystems.push({ name: 'tmpfs', dir: tmp.dir, cacheControl: false });
    }
    const exportsText = filesystems.map((f) => `${f.dir} *(rw,no_root_squash,insecure)\n`).join('');
    srv = await startServerChild(d, { registry: d.registry, exportsText });
  });

  after(async () => {
    await srv?.stop();
    for (const m of mounts) await m.cleanup();
    d?.cleanup();
  });

  const connectTo = async (dir: string, mode: CacheMode, extra: Record<string, unknown> = {}): Promise<NfsClient> => {
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: dir, localioRegistry: d.registry, localioRead: mode, localioWrite: mode, ...extra });
    assert.equal(await c.localioReady(5000), true, 'the server is local');
    return c;
  };

  const WRITES: [number, number][] = [
    [0, 4096], // aligned everywhere
    [100, 5000], // head, maybe a middle, tail
    [511, 1], // too small for direct IO
    [4095, 8194],
    [1000, 300_000],
    [3 * 4096 + 7, 3 * 65536 + 13],
    [65536, 131072], // aligned
    [(1 << 20) - 10, 5000], // extends the file
    [(1 << 20) + 9000, 777], // past the end: a hole before it
  ];

  for (const mode of MODES) {
    test(`${mode}: misaligned writes and reads land right on every file system`, async (t) => {
      if (skipped.length > 0) t.diagnostic(`not tested: ${skipped.join('; ')}`);
      for (const f of filesystems) {
        const c = await connectTo(f.dir, mode);
        try {
          const name = `rw-${mode}.bin`;
          const file = path.join(f.dir, name);
          let model = randomBytes(1 << 20);
          fs.writeFileSync(file, model);
          const h = await c.open(name, 'r+');
          for (const [pos, len] of WRITES) {
            const data = randomBytes(len);
            await h.write(data, 0, len, pos);
            await h.sync(); // one WRITE for this range
            if (pos + len > model.length) model = Buffer.concat([model, Buffer.alloc(pos + len - model.length)]);
            data.copy(model, pos);
          }
          const reads: [number, number][] = [...WRITES, [0, model.length], [model.length - 100, 1000], [model.length + 10, 100], [7, 1]];
          for (const [pos, len] of reads) {
            const buf = Buffer.alloc(len + 3, 0xee);
            const { bytesRead } = await h.read(buf, 3, len, pos); // memory at an odd address
            const want = model.subarray(Math.min(pos, model.length), Math.min(pos + len, model.length));
            assert.equal(bytesRead, want.length, `${f.name} read [${pos}, +${len})`);
            assert.ok(buf.subarray(3, 3 + bytesRead).equals(want), `${f.name} bytes of [${pos}, +${len})`);
          }
          // Aligned memory and range: read in place.
          const aligned = allocAligned(65536, 4096);
          const before = c.stats().localio!.io.bounced;
          const { bytesRead } = await h.read(aligned, 0, 65536, 65536);
          assert.equal(bytesRead, 65536);
          assert.ok(aligned.equals(model.subarray(65536, 131072)));
          await h.close();
          assert.ok(fs.readFileSync(file).equals(model), `${f.name}: the bytes on disk`);

          const s = c.stats();
          assert.equal(s.nfsOps['READ'] ?? 0, 0, 'no NFS READ');
          assert.equal(s.nfsOps['WRITE'] ?? 0, 0, 'no NFS WRITE');
          const io = s.localio!.io;
          assert.equal(io.readMode, mode);
          assert.equal(io.writeMode, mode);
          const fb = io.fallbacks;
          if (mode === 'buffered') {
            assert.ok(io.buffered.reads > 0 && io.buffered.writes > 0);
            assert.equal(io.direct.reads + io.direct.writes + io.dontcache.reads + io.dontcache.writes + io.split.writes, 0);
          } else if (mode === 'dontcache' && f.cacheControl) {
            assert.ok(io.dontcache.reads > 0 && io.dontcache.writes > 0, JSON.stringify(io));
            assert.equal(io.buffered.reads + io.buffered.writes, 0);
            assert.equal(fb.dontcacheUnsupported, 0);
          } else if (mode === 'dontcache') {
            assert.ok(fb.dontcacheUnsupported > 0, 'refused by tmpfs: buffered, counted');
            assert.equal(io.dontcache.reads + io.dontcache.writes, 0);
            assert.ok(io.buffered.reads > 0 && io.buffered.writes > 0);
          } else if (f.cacheControl) {
            assert.ok(io.direct.reads > 0, 'direct reads');
            assert.ok(io.widened > 0, 'misaligned reads widened');
            assert.equal(c.stats().localio!.io.bounced, before, 'the aligned read went in place');
            assert.ok(io.direct.writes > 0, 'aligned writes direct');
            assert.ok(io.split.writes > 0 && io.split.bufferedBytes > 0, 'misaligned writes split');
            assert.ok(fb.tooSmall > 0, 'the 1-byte write went buffered');
            assert.equal(fb.noDirectIo + fb.directRefused + fb.unalignedMemory, 0, JSON.stringify(fb));
            assert.ok(io.pool && io.pool.buffers >= 1);
          } else {
            assert.ok(fb.noDirectIo > 0, 'tmpfs has no direct IO: buffered, counted');
            assert.equal(io.direct.reads + io.direct.writes + io.split.writes, 0);
          }
        } finally {
          await c.close();
        }
      }
    });
  }

  test('direct and dontcache keep the file out of the page cache; buffered fills it', { skip: hasFincore() ? false : 'fincore (util-linux) not installed' }, async () => {
    for (const f of filesystems.filter((x) => x.cacheControl)) {
      const size = 8 << 20;
      const data = randomBytes(size);
      for (const mode of MODES) {
        const c = await connectTo(f.dir, mode);
        try {
          const name = `pc-${mode}.bin`;
          const file = path.join(f.dir, name);
          await c.writeFile(name, data);
          const afterWrite = resident(file);
          const back = await c.readFile(name);
          assert.ok(back.equals(data));
          const afterRead = resident(file);
          if (mode === 'buffered') {
            assert.ok(afterWrite >= size * 0.9, `${f.name} buffered: ${afterWrite} bytes cached after writing`);
          } else {
            assert.ok(afterWrite <= size * 0.05, `${f.name} ${mode}: ${afterWrite} bytes cached after writing`);
            // RWF_DONTCACHE drops a folio when a read consumes it: read-ahead
            // past the last read can stay (about 1 MiB on XFS here).
            const allowed = mode === 'direct' ? size * 0.05 : size * 0.25;
            assert.ok(afterRead <= allowed, `${f.name} ${mode}: ${afterRead} bytes cached after reading`);
          }
          if (mode === 'buffered') assert.ok(afterRead >= size * 0.9);
          assert.ok(fs.readFileSync(file).equals(data));
        } finally {
          await c.close();
        }
      }
    }
  });

  test('stable_how is kept in every mode: FILE_SYNC and DATA_SYNC answer as asked, UNSTABLE waits for COMMIT', async () => {
    for (const f of filesystems) {
      for (const mode of MODES) {
        const c = await connectTo(f.dir, mode);
        try {
          const name = `stable-${mode}.bin`;
          await c.writeFile(name, Buffer.alloc(100_000));
          const h = await c.open(name, 'r');
          const fh = h.inode.fh;
          const t = c.transportFor(fh);
          assert.equal(t.kind, 'localio');
          const expect = Buffer.alloc(100_000);
          let at = 300;
          for (const how of [stable_how.UNSTABLE, stable_how.DATA_SYNC, stable_how.FILE_SYNC]) {
            const a = randomBytes(5000);
            const b = randomBytes(7000);
            const r = await t.write(fh, at, [a, b], 12_000, how);
            assert.equal(r.count, 12_000, `${f.name} ${mode}`);
            assert.equal(r.committed, how);
            Buffer.concat([a, b]).copy(expect, at);
            at += 20_000;
          }
          const cm = await t.commit(fh, 0, 0);
          assert.equal(cm.verf.length, 8);
          await h.close();
          assert.ok(fs.readFileSync(path.join(f.dir, name)).equals(expect), `${f.name} ${mode}: bytes on disk`);
        } finally {
          await c.close();
        }
      }
    }
  });
});

describe('direct mode and revocation', { skip, timeout: 60_000 }, () => {
  let d: Dirs;
  before(() => {
    d = makeDirs();
  });
  after(() => d?.cleanup());

  test('unexport revokes the O_DIRECT grant with the plain one; no descriptor of the file survives', async () => {
    const srv = await startServer({ dir: d.exp, nfsPort: 0, portmapPort: 0, stateDir: d.state, localioRegistry: d.registry });
    const c = new ClientChild();
    try {
      await c.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: d.exp, localioRegistry: d.registry, localioRead: 'direct', localioWrite: 'direct' } });
      assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
      const data = randomBytes(65536);
      const h = await c.do<number>({ op: 'open', path: 'held.bin', flags: 'w+' });
      await c.do({ op: 'hcall', h, method: 'write', args: [{ b64: data.toString('base64') }, 0, data.length, 0] });
      await c.do({ op: 'hcall', h, method: 'sync' });
      const r = (await c.do({ op: 'hcall', h, method: 'read', args: [{ b64: Buffer.alloc(1000).toString('base64') }, 0, 1000, 100] })) as { bytesRead: number };
      assert.equal(r.bytesRead, 1000);
      const s1 = (await c.stats()).localio as unknown as { grantsOpen: number; io: { direct: { writes: number; reads: number } } };
      assert.ok(s1.io.direct.writes >= 1 && s1.io.direct.reads >= 1, 'direct IO happened');
      assert.equal(s1.grantsOpen, 2, 'the plain grant and its O_DIRECT twin');
      const held = (await c.do<string[]>({ op: 'fds' })).filter((f) => f.endsWith('/held.bin'));
      assert.equal(held.length, 2);
      assert.equal(await srv.unexport(d.exp), true);
      assert.equal(srv.localio!.stats().grantsOpen, 0);
      assert.equal(srv.localio!.stats().revokeTimeouts, 0);
      assert.deepEqual((await c.do<string[]>({ op: 'fds' })).filter((f) => f.endsWith('/held.bin')), [], 'no descriptor of the file is left');
      assert.equal((await c.stats()).localio.grantsOpen, 0);
      assert.ok(fs.readFileSync(path.join(d.exp, 'held.bin')).equals(data));
    } finally {
      await c.exit();
      await srv.close();
    }
  });
});
