// Reads served from the page cache on the event loop (preadv2 RWF_NOWAIT),
// the engine's threads for what is not cached, and the fallback without the
// addon. Files live in the temporary directory (a disk file system: tmpfs
// pages cannot be dropped).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EngineIo } from '../../src/localio/io.js';
import { IoEngine, allocAligned, dropCachedPages, native, nativeStatus, nowaitReadAvailable, openODirect, readNowait, readNowaitBuffered, statxDioAlign } from '../../src/native/index.js';

const run = promisify(execFile);
const skip = native && nowaitReadAvailable ? false : `native addon unavailable: ${nativeStatus().reason ?? 'built without readNowait'}`;
const PAGE = 4096;

describe('reads from the page cache without the IO threads', { skip }, () => {
  let dir: string;
  let engine: IoEngine;
  let io: EngineIo;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-nowait-'));
    engine = new IoEngine({ threads: 2, queueDepth: 16 });
    io = new EngineIo(engine);
  });

  after(async () => {
    await io.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A file of `size` random bytes, written and fsynced (its pages clean), open read-only. */
  function fileOf(name: string, size: number): { fd: number; data: Buffer } {
    const file = path.join(dir, name);
    const data = randomBytes(size);
    fs.writeFileSync(file, data);
    const wfd = fs.openSync(file, 'r+');
    fs.fsyncSync(wfd);
    fs.closeSync(wfd);
    return { fd: fs.openSync(file, 'r'), data };
  }

  /** Reads through `io`; answers what came back and how the read went. */
  async function readVia(fd: number, len: number, pos: number): Promise<{ got: Buffer; cached: number; engine: number; submitted: number }> {
    const before = io.stats();
    const submittedBefore = engine.stats().submitted;
    const buf = Buffer.alloc(len);
    const n = await io.read(fd, buf, 0, len, pos);
    const after = io.stats();
    return {
      got: buf.subarray(0, n),
      cached: after.cachedReads - before.cachedReads,
      engine: after.engineReads - before.engineReads,
      submitted: engine.stats().submitted - submittedBefore,
    };
  }

  test('a cached page is read on the event loop: no request reaches the engine', async () => {
    const { fd, data } = fileOf('cached', 64 * PAGE);
    try {
      const r = await readVia(fd, PAGE, 5 * PAGE);
      assert.deepEqual(r.got, data.subarray(5 * PAGE, 6 * PAGE));
      assert.equal(r.cached, 1);
      assert.equal(r.engine, 0);
      assert.equal(r.submitted, 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a page not in the cache goes to the engine and reads correctly, then is cached', async () => {
    const { fd, data } = fileOf('dropped', 256 * PAGE);
    try {
      assert.equal(dropCachedPages(fd), true);
      // The kernel answers EAGAIN rather than waiting for the device.
      assert.equal(readNowait(fd, Buffer.alloc(PAGE), 0, PAGE, 10 * PAGE), undefined);

      const first = await readVia(fd, PAGE, 200 * PAGE);
      assert.deepEqual(first.got, data.subarray(200 * PAGE, 201 * PAGE));
      assert.equal(first.engine, 1);
      assert.equal(first.cached, 0);
      assert.equal(first.submitted, 1);

      const again = await readVia(fd, PAGE, 200 * PAGE);
      assert.deepEqual(again.got, first.got);
      assert.equal(again.cached, 1);
      assert.equal(again.submitted, 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a read whose tail is not cached: the cached head on the loop, the rest on the engine', async () => {
    // Cached pages can be folios of up to 2 MiB (ext4 and XFS): drop whole ones.
    const MiB2 = 2 * 1024 * 1024;
    const { fd, data } = fileOf('half', 2 * MiB2);
    try {
      assert.equal(dropCachedPages(fd, MiB2, MiB2), true);
      const r = await readVia(fd, 2 * PAGE, MiB2 - PAGE);
      assert.deepEqual(r.got, data.subarray(MiB2 - PAGE, MiB2 + PAGE));
      assert.equal(r.cached, 0);
      assert.equal(r.engine, 1);
      assert.equal(r.submitted, 1);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('the end of the file: a short read on the loop, and nothing past it', async () => {
    const { fd, data } = fileOf('short', 6000);
    try {
      const r = await readVia(fd, 2 * PAGE, 0);
      assert.deepEqual(r.got, data);
      assert.equal(r.cached, 1);
      assert.equal(r.submitted, 0);
      const past = await readVia(fd, PAGE, 8000);
      assert.equal(past.got.length, 0);
      assert.equal(past.submitted, 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('an O_DIRECT descriptor is never read on the loop', async () => {
    const { fd: bfd, data } = fileOf('direct', 16 * PAGE);
    fs.closeSync(bfd);
    let fd: number;
    try {
      fd = openODirect(path.join(dir, 'direct'));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'EINVAL'); // no direct IO on this file system
      return;
    }
    try {
      const align = Math.max(statxDioAlign(fd).memAlign, 512);
      const buf = allocAligned(PAGE, Math.max(align, PAGE));
      assert.equal(readNowait(fd, buf, 0, PAGE, 0), undefined);
      const before = engine.stats().submitted;
      assert.equal(await io.read(fd, buf, 0, PAGE, 3 * PAGE), PAGE);
      assert.deepEqual(buf, data.subarray(3 * PAGE, 4 * PAGE));
      assert.equal(engine.stats().submitted - before, 1);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('readCached (no O_DIRECT check) answers at once from the cache, and nothing for a page not cached', () => {
    const { fd, data } = fileOf('cached-sync', 64 * PAGE);
    try {
      const buf = Buffer.alloc(3 * PAGE);
      const before = io.stats();
      assert.equal(io.readCached(fd, buf, 0, 3 * PAGE, 7 * PAGE), 3 * PAGE);
      assert.deepEqual(buf, data.subarray(7 * PAGE, 10 * PAGE));
      // The end of the file: the bytes up to it.
      assert.equal(io.readCached(fd, buf, 0, 3 * PAGE, 63 * PAGE), PAGE);
      assert.deepEqual(buf.subarray(0, PAGE), data.subarray(63 * PAGE));
      assert.equal(io.stats().cachedReads - before.cachedReads, 2);
      assert.equal(dropCachedPages(fd), true);
      assert.equal(io.readCached(fd, buf, 0, PAGE, 20 * PAGE), undefined);
      assert.equal(readNowaitBuffered(fd, buf, 0, PAGE, 20 * PAGE), undefined);
      assert.equal(io.stats().engineReads, before.engineReads);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('readNowait checks its arguments and reports a bad descriptor as "not now"', () => {
    const buf = Buffer.alloc(PAGE);
    assert.throws(() => native!.readNowait!(0, buf, 0, PAGE + 1, 0), RangeError);
    assert.throws(() => native!.readNowait!(0, buf, 1.5, 16, 0), RangeError);
    assert.throws(() => native!.readNowait!(0, 'x' as unknown as Buffer, 0, 1, 0), TypeError);
    assert.equal(native!.readNowait!(1_000_000, buf, 0, PAGE, 0), -9); // EBADF
    assert.equal(readNowait(1_000_000, buf, 0, PAGE, 0), undefined);
    assert.throws(() => native!.readNowaitBuffered!(0, buf, 0, PAGE + 1, 0), RangeError);
    assert.equal(native!.readNowaitBuffered!(1_000_000, buf, 0, PAGE, 0), -9);
  });
});

test('TSNFS_NO_NATIVE=1: EngineIo reads through the fallback engine', async () => {
  const child = fileURLToPath(new URL('./nowait-fallback-child.js', import.meta.url));
  const { stdout } = await run(process.execPath, [child], { env: { ...process.env, TSNFS_NO_NATIVE: '1' }, timeout: 60_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as { ok: boolean; kind: string; cachedReads: number; engineReads: number; reads: number };
  assert.equal(out.ok, true);
  assert.equal(out.kind, 'engine-fallback');
  assert.equal(out.cachedReads, 0);
  assert.equal(out.engineReads, out.reads);
});
