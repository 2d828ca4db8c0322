// The IO engine on its native backend: data verification, queue depth,
// per-IO flags, errors, direct IO on XFS, and progress while the libuv
// threadpool is saturated.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  IoEngine,
  allocAligned,
  isUnsupported,
  native,
  nativeStatus,
  openODirect,
  statxDioAlign,
  type IoError,
} from '../../src/native/index.js';
import { randomWritesThenReads } from './io-check.js';
import { mountTinyTmpfs, mountXfs, type ScratchMount } from './scratch-fs.js';

const skip = native ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;

function kernelAtLeast(major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(os.release());
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

async function rejection(p: Promise<unknown>): Promise<IoError> {
  try {
    await p;
  } catch (err) {
    return err as IoError;
  }
  assert.fail('expected the request to fail');
}

describe('IoEngine, native backend', { skip }, () => {
  let engine: IoEngine;
  let dir: string;

  before(() => {
    engine = new IoEngine({ threads: 4, queueDepth: 64 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-engine-'));
  });

  after(async () => {
    await engine.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('runs on its own threads, as IO flushers where allowed', (t) => {
    assert.equal(engine.backend, 'native');
    assert.equal(engine.threads, 4);
    const s = engine.stats();
    // PR_SET_IO_FLUSHER needs CAP_SYS_RESOURCE (capability 24).
    const capEff = /CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    const capable = (BigInt(`0x${capEff}`) & (1n << 24n)) !== 0n;
    t.diagnostic(`CAP_SYS_RESOURCE ${capable ? 'held' : 'not held'}: ioFlusherThreads=${s.ioFlusherThreads}${s.ioFlusherError ? ` (${s.ioFlusherError})` : ''}`);
    if (capable) assert.equal(s.ioFlusherThreads, 4);
    else assert.equal(s.ioFlusherError, 'EPERM');
  });

  test('1,000 random 4 KiB writes then reads, verified byte for byte', async (t) => {
    const before = engine.stats();
    const started = performance.now();
    const r = await randomWritesThenReads(engine, dir, { writes: 1000, seed: 7 });
    const ms = performance.now() - started;
    const s = engine.stats();
    t.diagnostic(
      `${r.writes} writes + ${r.reads} reads in ${ms.toFixed(0)} ms; ${s.completed - before.completed} completions in ${
        s.batches - before.batches
      } batches; max queue depth ${s.maxQueueDepth}`,
    );
    assert.equal(s.inFlight, 0);
    assert.equal(s.waiting, 0);
    assert.ok(s.maxQueueDepth >= 1000, 'all 1,000 were accepted at once; 64 at a time went to the threads');
    assert.ok(s.batches - before.batches < s.completed - before.completed, 'completions arrive in batches');
  });

  test('short reads are returned as is', async () => {
    const file = path.join(dir, 'short');
    fs.writeFileSync(file, Buffer.alloc(10_000, 3));
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      assert.equal(await engine.run({ op: 'read', fd, buffer: buf, position: 8192 }), 10_000 - 8192);
      assert.equal(await engine.run({ op: 'read', fd, buffer: buf, position: 20_000 }), 0);
      assert.equal(await engine.run({ op: 'read', fd, buffer: buf, position: 0, length: 0 }), 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('syncs and durable writes: fsync, fdatasync, dsync, sync', async () => {
    const fd = fs.openSync(path.join(dir, 'sync'), 'w+');
    try {
      const buf = randomBytes(8192);
      assert.equal(await engine.run({ op: 'write', fd, buffer: buf, position: 0, flags: { dsync: true } }), 8192);
      assert.equal(await engine.run({ op: 'write', fd, buffer: buf, position: 8192, flags: { sync: true } }), 8192);
      assert.equal(await engine.run({ op: 'fdatasync', fd }), 0);
      assert.equal(await engine.run({ op: 'fsync', fd }), 0);
      assert.equal(fs.fstatSync(fd).size, 16384);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('errors are Node-style system errors', async () => {
    const fd = fs.openSync(path.join(dir, 'closed'), 'w+');
    fs.closeSync(fd);
    const e1 = await rejection(engine.run({ op: 'read', fd, buffer: Buffer.alloc(16), position: 0 }));
    assert.equal(e1.code, 'EBADF');
    assert.equal(e1.errno, -9);
    assert.equal(e1.syscall, 'preadv2');
    const e2 = await rejection(engine.run({ op: 'fsync', fd }));
    assert.equal(e2.syscall, 'fsync');
    assert.equal(e2.code, 'EBADF');
    // Writing to a read-only descriptor.
    const ro = fs.openSync(path.join(dir, 'sync'), 'r');
    const e3 = await rejection(engine.run({ op: 'write', fd: ro, buffer: Buffer.alloc(16), position: 0 }));
    fs.closeSync(ro);
    assert.equal(e3.code, 'EBADF');
    assert.equal(e3.bytesDone, 0);
    // Malformed requests fail their own promise.
    await assert.rejects(engine.run({ op: 'read', fd: 0, position: 0 }), TypeError);
    await assert.rejects(engine.run({ op: 'read', fd: 0, buffer: Buffer.alloc(4), position: -1 }), RangeError);
    await assert.rejects(engine.run({ op: 'read', fd: 0, buffer: Buffer.alloc(4), length: 5, position: 0 }), RangeError);
    assert.equal(engine.stats().inFlight, 0);
  });

  test('RWF_DONTCACHE where the file system has it; ENOTSUP (unsupported) where not', async (t) => {
    const ext = path.join(dir, 'dontcache');
    fs.writeFileSync(ext, Buffer.alloc(8192, 1));
    const fd = fs.openSync(ext, 'r+');
    const onTmp = await engine.probeDontcache(fd);
    let wrote = 'n/a';
    try {
      wrote = String(await engine.run({ op: 'write', fd, buffer: Buffer.alloc(4096, 2), position: 0, flags: { dontcache: true } }));
    } catch (err) {
      wrote = (err as IoError).code ?? '?';
    }
    const nowait = await engine
      .run({ op: 'write', fd, buffer: Buffer.alloc(4096, 2), position: 0, flags: { nowait: true } })
      .then(String, (err: IoError) => `${err.code}${err.unsupported ? ' (unsupported)' : ''}`);
    fs.closeSync(fd);
    t.diagnostic(`${os.release()}, temp dir: dontcache read probe=${onTmp}, dontcache write=${wrote}, nowait buffered write=${nowait}`);
    if (kernelAtLeast(6, 14) && onTmp) assert.equal(wrote, '4096');

    if (fs.existsSync('/dev/shm')) {
      const shm = fs.mkdtempSync('/dev/shm/tsnfs-dc-');
      t.after(() => fs.rmSync(shm, { recursive: true, force: true }));
      const sfd = fs.openSync(path.join(shm, 'f'), 'w+');
      try {
        assert.equal(await engine.probeDontcache(sfd), false, 'tmpfs has no RWF_DONTCACHE');
        const err = await rejection(engine.run({ op: 'write', fd: sfd, buffer: Buffer.alloc(4096), position: 0, flags: { dontcache: true } }));
        assert.equal(err.errno, -95);
        assert.ok(isUnsupported(err), 'marked unsupported: retry buffered');
        assert.equal(await engine.run({ op: 'write', fd: sfd, buffer: Buffer.alloc(4096), position: 0 }), 4096, 'and the retry works');
      } finally {
        fs.closeSync(sfd);
      }
    }
  });

  test('close waits for in-flight IO, then refuses new requests', async () => {
    const e = new IoEngine({ threads: 2, queueDepth: 8 });
    const fd = fs.openSync(path.join(dir, 'closing'), 'w+');
    const pending = e.submit(Array.from({ length: 50 }, (_, i) => ({ op: 'write' as const, fd, buffer: Buffer.alloc(4096, i), position: i * 4096 })));
    const closed = e.close();
    const err = await rejection(e.run({ op: 'fsync', fd }));
    assert.equal(err.code, 'ESHUTDOWN');
    assert.deepEqual(await Promise.all(pending), new Array(50).fill(4096));
    await closed;
    assert.equal(e.stats().completed, 50);
    fs.closeSync(fd);
  });
});

describe('IoEngine queue depth', { skip }, () => {
  test('256 requests in flight at once all complete', async (t) => {
    const engine = new IoEngine({ threads: 4, queueDepth: 256 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-depth-'));
    t.after(async () => {
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const fd = fs.openSync(path.join(dir, 'f'), 'w+');
    const bufs = Array.from({ length: 256 }, (_, i) => Buffer.alloc(16384, i));
    const started = performance.now();
    const ps = engine.submit(bufs.map((buffer, i) => ({ op: 'write' as const, fd, buffer, position: i * 16384 })));
    const mid = engine.stats();
    assert.equal(mid.inFlight, 256);
    assert.equal(mid.waiting, 0, 'none held back: all 256 are in the engine');
    assert.deepEqual(await Promise.all(ps), new Array(256).fill(16384));
    const s = engine.stats();
    t.diagnostic(`256 x 16 KiB writes in ${(performance.now() - started).toFixed(1)} ms, ${s.batches} batches`);
    assert.equal(s.completed, 256);
    assert.equal(s.maxQueueDepth, 256);
    assert.equal(s.inFlight, 0);
    const file = fs.readFileSync(path.join(dir, 'f'));
    for (let i = 0; i < 256; i++) assert.ok(file.subarray(i * 16384, (i + 1) * 16384).equals(bufs[i]!));
    fs.closeSync(fd);
  });
});

describe('IoEngine pool growth', { skip }, () => {
  test('the pool grows to maxThreads while requests wait for a worker, and stays there', async (t) => {
    const engine = new IoEngine({ threads: 1, maxThreads: 6, queueDepth: 64 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-grow-'));
    t.after(async () => {
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    assert.equal(engine.stats().threads, 1);
    assert.equal(engine.stats().maxThreads, 6);
    const fd = fs.openSync(path.join(dir, 'f'), 'w+');
    const bufs = Array.from({ length: 40 }, (_, i) => Buffer.alloc(8192, i));
    const ps = engine.submit(bufs.map((buffer, i) => ({ op: 'write' as const, fd, buffer, position: i * 8192 })));
    // 40 requests for one worker: five more start at once, no more than allowed.
    assert.equal(engine.stats().threads, 6);
    assert.deepEqual(await Promise.all(ps), new Array(40).fill(8192));
    const reads = bufs.map(() => Buffer.alloc(8192));
    await Promise.all(engine.submit(reads.map((buffer, i) => ({ op: 'read' as const, fd, buffer, position: i * 8192 }))));
    reads.forEach((r, i) => assert.ok(r.equals(bufs[i]!)));
    assert.equal(engine.stats().threads, 6);
    fs.closeSync(fd);
  });

  test('maxThreads below threads is refused', () => {
    assert.throws(() => new IoEngine({ threads: 4, maxThreads: 2 }), RangeError);
  });
});

describe('IoEngine O_DIRECT reads with Linux AIO', { skip }, () => {
  test('direct reads go to the device without a worker each, and read the right bytes', async (t) => {
    const engine = new IoEngine({ threads: 2, queueDepth: 64 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-aio-'));
    t.after(async () => {
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const file = path.join(dir, 'f');
    const data = randomBytes(256 * 4096);
    fs.writeFileSync(file, data);
    let fd: number;
    try {
      fd = openODirect(file);
    } catch (err) {
      t.skip(`no O_DIRECT here: ${(err as Error).message}`);
      return;
    }
    try {
      const order = Array.from({ length: 256 }, (_, i) => (i * 97) % 256);
      const bufs = order.map(() => allocAligned(4096, 4096));
      const got = await Promise.all(engine.submit(order.map((blk, i) => ({ op: 'read' as const, fd, buffer: bufs[i]!, position: blk * 4096 }))));
      assert.deepEqual(got, new Array(256).fill(4096));
      order.forEach((blk, i) => assert.ok(bufs[i]!.equals(data.subarray(blk * 4096, (blk + 1) * 4096)), `block ${blk}`));
      const s = engine.stats();
      t.diagnostic(`${s.asyncReads} of 256 reads through AIO; ${s.threads} workers`);
      assert.ok(s.asyncReads > 0, 'AIO carried the direct reads');
      assert.equal(s.threads, 2, 'no worker per read');
      // Past the end of the file: a short (empty) read, as a worker would answer.
      assert.equal(await engine.run({ op: 'read', fd, buffer: bufs[0]!, position: 300 * 4096 }), 0);
      // Misaligned: the kernel's EINVAL, as on the workers.
      const e = await rejection(engine.run({ op: 'read', fd, buffer: bufs[0]!, position: 100 }));
      assert.equal(e.code, 'EINVAL');
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('IoEngine and a saturated libuv threadpool', { skip }, () => {
  test('native IO completes while pbkdf2 holds every libuv thread; the fallback waits', async (t) => {
    const poolSize = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
    // Calibrate pbkdf2 to about 0.4 s per call alone on this machine (more
    // when all run at once on few cores).
    pbkdf2Sync('password', 'salt', 5_000, 64, 'sha512');
    const c0 = performance.now();
    pbkdf2Sync('password', 'salt', 50_000, 64, 'sha512');
    const perIter = (performance.now() - c0) / 50_000;
    const iterations = Math.max(50_000, Math.round(400 / perIter));

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-saturate-'));
    const engine = new IoEngine({ threads: 2, queueDepth: 64 });
    const slow = new IoEngine({ threads: 2, queueDepth: 64, backend: 'fallback' });
    t.after(async () => {
      await engine.close();
      await slow.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const fd = fs.openSync(path.join(dir, 'f'), 'w+');

    const t0 = performance.now();
    let firstHashDone = Infinity;
    const hashes = Array.from(
      { length: poolSize },
      () =>
        new Promise<void>((resolve, reject) =>
          pbkdf2('password', 'salt', iterations, 64, 'sha512', (err) => {
            if (err) return reject(err);
            firstHashDone = Math.min(firstHashDone, performance.now() - t0);
            resolve();
          }),
        ),
    );
    await new Promise((r) => setTimeout(r, 50)); // every pool thread is busy now

    const fallbackWrite = slow.run({ op: 'write', fd, buffer: Buffer.alloc(4096, 9), position: 1 << 20 }).then(() => performance.now() - t0);
    const n0 = performance.now();
    const bufs = Array.from({ length: 200 }, (_, i) => Buffer.alloc(4096, i));
    await Promise.all(engine.submit(bufs.map((buffer, i) => ({ op: 'write' as const, fd, buffer, position: i * 4096 }))));
    await engine.run({ op: 'fdatasync', fd });
    await Promise.all(engine.submit(bufs.map((_, i) => ({ op: 'read' as const, fd, buffer: Buffer.alloc(4096), position: i * 4096 }))));
    const nativeDone = performance.now() - t0;
    const nativeMs = performance.now() - n0;

    const fallbackDone = await fallbackWrite;
    await Promise.all(hashes);
    fs.closeSync(fd);
    t.diagnostic(
      `pool ${poolSize} threads, ${poolSize} pbkdf2 of ${iterations} iterations; first finished at ${firstHashDone.toFixed(0)} ms; ` +
        `native: 200 writes + fdatasync + 200 reads took ${nativeMs.toFixed(1)} ms (done at ${nativeDone.toFixed(0)} ms); ` +
        `fallback: one write done at ${fallbackDone.toFixed(0)} ms`,
    );
    assert.ok(nativeDone < firstHashDone, 'the native engine finished while the threadpool was still saturated');
    assert.ok(fallbackDone >= firstHashDone, 'the fallback (libuv pool) had to wait for a pool thread');
  });
});

describe('IoEngine direct IO on XFS (4096-byte sectors)', { skip }, () => {
  let xfs: ScratchMount | string;
  let engine: IoEngine;

  before(async () => {
    xfs = await mountXfs({ sectorSize: 4096 });
    engine = new IoEngine({ threads: 4, queueDepth: 32 });
  });

  after(async () => {
    await engine.close();
    if (typeof xfs !== 'string') await xfs.cleanup();
  });

  test('aligned O_DIRECT writes and reads, verified', async (t) => {
    if (typeof xfs === 'string') return t.skip(xfs);
    const fd = openODirect(path.join(xfs.dir, 'direct'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      const a = statxDioAlign(fd);
      assert.equal(a.offsetAlign, 4096);
      const BLOCKS = 256;
      const data = allocAligned(BLOCKS * 4096, a.memAlign);
      randomBytes(data.length).copy(data);
      const writes = Array.from({ length: BLOCKS }, (_, i) => ({
        op: 'write' as const,
        fd,
        buffer: data,
        offset: i * 4096,
        length: 4096,
        position: ((i * 37) % BLOCKS) * 4096,
      }));
      assert.deepEqual(await Promise.all(engine.submit(writes)), new Array(BLOCKS).fill(4096));
      const back = allocAligned(BLOCKS * 4096, a.memAlign);
      const n = await engine.run({ op: 'read', fd, buffer: back, position: 0 });
      assert.equal(n, BLOCKS * 4096);
      for (let i = 0; i < BLOCKS; i++) {
        const pos = ((i * 37) % BLOCKS) * 4096;
        if (!back.subarray(pos, pos + 4096).equals(data.subarray(i * 4096, (i + 1) * 4096))) assert.fail(`block ${i} differs`);
      }
      const dc = await engine
        .run({ op: 'write', fd, buffer: data, length: 4096, position: 0, flags: { dontcache: true } })
        .then(String, (e: IoError) => e.code ?? '?');
      t.diagnostic(`O_DIRECT + RWF_DONTCACHE write on XFS: ${dc}`);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('misaligned O_DIRECT fails with EINVAL (the engine does not split)', async (t) => {
    if (typeof xfs === 'string') return t.skip(xfs);
    const fd = openODirect(path.join(xfs.dir, 'misaligned'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      const a = statxDioAlign(fd);
      const buf = allocAligned(3 * 4096, 4096);
      assert.equal(await engine.run({ op: 'write', fd, buffer: buf, position: 0 }), 3 * 4096, 'aligned: fine');
      const cases = [
        { what: 'file offset', req: { op: 'write' as const, fd, buffer: buf, length: 4096, position: a.offsetAlign / 2 } },
        { what: 'length', req: { op: 'write' as const, fd, buffer: buf, length: 1000, position: 0 } },
        { what: 'memory', req: { op: 'write' as const, fd, buffer: buf, offset: 1, length: 4096, position: 0 } },
        { what: 'read offset', req: { op: 'read' as const, fd, buffer: buf, length: 4096, position: 512 } },
      ];
      for (const c of cases) {
        const err = await rejection(engine.run(c.req));
        assert.equal(err.code, 'EINVAL', `misaligned ${c.what}`);
        if (c.req.op === 'write') assert.equal(err.bytesDone, 0);
      }
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('IoEngine when the disk fills', { skip }, () => {
  test('ENOSPC: the write fails with what landed in bytesDone, never reported complete', async (t) => {
    const tiny = await mountTinyTmpfs(1024);
    if (typeof tiny === 'string') return t.skip(tiny);
    const engine = new IoEngine({ threads: 1, queueDepth: 4 });
    t.after(async () => {
      await engine.close();
      await tiny.cleanup();
    });
    const fd = fs.openSync(path.join(tiny.dir, 'big'), 'w+');
    try {
      const buf = Buffer.alloc(2 << 20, 5);
      const err = await rejection(engine.run({ op: 'write', fd, buffer: buf, position: 0 }));
      t.diagnostic(`2 MiB into a 1 MiB tmpfs: ${err.code}, bytesDone=${err.bytesDone}, file size ${fs.fstatSync(fd).size}`);
      assert.equal(err.code, 'ENOSPC');
      assert.equal(err.syscall, 'pwritev2');
      assert.ok(err.bytesDone! > 0 && err.bytesDone! < buf.length, 'part landed (the engine continued a short write), not all');
      assert.equal(fs.fstatSync(fd).size, err.bytesDone);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('IoEngine gathered writes (buffers)', () => {
  for (const backend of ['native', 'fallback'] as const) {
    test(`${backend}: many buffers land in order as one write, empty ones skipped`, { skip: backend === 'native' ? skip : false }, async (t) => {
      const engine = new IoEngine({ threads: 2, queueDepth: 8, backend });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-gather-'));
      const fd = fs.openSync(path.join(dir, 'f'), 'w+');
      t.after(async () => {
        fs.closeSync(fd);
        await engine.close();
        fs.rmSync(dir, { recursive: true, force: true });
      });
      const pieces = [randomBytes(65536), Buffer.alloc(0), randomBytes(1), randomBytes(4095), randomBytes(200_000)];
      const whole = Buffer.concat(pieces);
      const n = await engine.run({ op: 'write', fd, buffers: pieces, position: 4096 });
      assert.equal(n, whole.length);
      const back = Buffer.alloc(whole.length);
      assert.equal(fs.readSync(fd, back, 0, back.length, 4096), whole.length);
      assert.ok(back.equals(whole));
      const err = await rejection(engine.run({ op: 'write', fd: 987654, buffers: pieces, position: 0 }));
      assert.equal(err.code, 'EBADF');
      assert.equal(err.bytesDone, 0);
      assert.ok((await rejection(engine.run({ op: 'read', fd, buffers: pieces, position: 0 }))) instanceof TypeError);
    });
  }

  test('ENOSPC part way through the buffers: bytesDone is the prefix that landed', { skip }, async (t) => {
    const tiny = await mountTinyTmpfs(1024);
    if (typeof tiny === 'string') return t.skip(tiny);
    const engine = new IoEngine({ threads: 1, queueDepth: 4 });
    const fd = fs.openSync(path.join(tiny.dir, 'big'), 'w+');
    t.after(async () => {
      fs.closeSync(fd);
      await engine.close();
      await tiny.cleanup();
    });
    const pieces = Array.from({ length: 32 }, (_, i) => Buffer.alloc(65536, i));
    const err = await rejection(engine.run({ op: 'write', fd, buffers: pieces, position: 0 }));
    assert.equal(err.code, 'ENOSPC');
    assert.ok(err.bytesDone! > 0 && err.bytesDone! < 32 * 65536);
    assert.equal(fs.fstatSync(fd).size, err.bytesDone);
    const back = Buffer.alloc(err.bytesDone!);
    fs.readSync(fd, back, 0, back.length, 0);
    for (let i = 0; i < back.length; i += 65536) assert.equal(back[i], i / 65536, 'pieces in order');
  });
});
