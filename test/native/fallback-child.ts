// Run by fallback.test.ts with TSNFS_NO_NATIVE=1: exercises every wrapper on
// its pure-TypeScript path and prints a JSON summary (exit code 0 when every
// check held).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FdChannel,
  FdListener,
  IoEngine,
  allocAligned,
  bufferAddress,
  fdPassingAvailable,
  isODirect,
  isUnsupported,
  native,
  nativeStatus,
  peerCred,
  setODirect,
  statxDioAlign,
  type IoError,
} from '../../src/native/index.js';
import { randomWritesThenReads } from './io-check.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-fallback-'));
try {
  const status = nativeStatus();
  assert.equal(native, undefined);
  assert.equal(status.available, false);

  // No descriptor passing: LOCALIO stays off.
  assert.equal(fdPassingAvailable(), false);
  assert.throws(() => FdListener.listen(path.join(dir, 's.sock')), { code: 'ERR_TSNFS_NATIVE_UNAVAILABLE' });
  await assert.rejects(FdChannel.connect(path.join(dir, 's.sock')), { code: 'ERR_TSNFS_NATIVE_UNAVAILABLE' });
  assert.throws(() => peerCred(0), { code: 'ERR_TSNFS_NATIVE_UNAVAILABLE' });

  // Direct IO facts: none, so buffered IO.
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, Buffer.alloc(8192));
  const fd = fs.openSync(file, 'r+');
  const align = statxDioAlign(fd);
  assert.deepEqual(align, { memAlign: 0, offsetAlign: 0, readOffsetAlign: 0 });
  assert.equal(setODirect(fd, true), false);
  assert.equal(isODirect(fd), undefined);
  const buf = allocAligned(4096, 4096);
  assert.ok(Buffer.isBuffer(buf) && buf.length === 4096 && buf.every((b) => b === 0));
  assert.equal(bufferAddress(buf), undefined);

  // The IO engine, over fs.read/fs.write on the libuv pool.
  assert.throws(() => new IoEngine({ backend: 'native' }));
  const engine = new IoEngine({ threads: 4, queueDepth: 64 });
  assert.equal(engine.backend, 'fallback');
  const started = performance.now();
  const random = await randomWritesThenReads(engine, dir, { writes: 1000, seed: 11 });
  const randomMs = performance.now() - started;

  assert.equal(await engine.run({ op: 'write', fd, buffer: Buffer.alloc(4096, 1), position: 0, flags: { dsync: true } }), 4096);
  assert.equal(await engine.run({ op: 'write', fd, buffer: Buffer.alloc(4096, 2), position: 4096, flags: { sync: true } }), 4096);
  assert.equal(await engine.run({ op: 'fsync', fd }), 0);
  assert.equal(await engine.run({ op: 'fdatasync', fd }), 0);
  const back = Buffer.alloc(8192);
  assert.equal(await engine.run({ op: 'read', fd, buffer: back, position: 0 }), 8192);
  assert.ok(back.subarray(0, 4096).every((b) => b === 1) && back.subarray(4096).every((b) => b === 2));
  assert.equal(await engine.run({ op: 'read', fd, buffer: back, position: 6000 }), 8192 - 6000, 'short read as is');

  let dontcache: IoError | undefined;
  await engine.run({ op: 'write', fd, buffer: back, position: 0, flags: { dontcache: true } }).catch((e: IoError) => (dontcache = e));
  assert.ok(dontcache && isUnsupported(dontcache) && dontcache.errno === -95, 'dontcache is refused as unsupported');
  assert.equal(await engine.probeDontcache(fd), false);

  fs.closeSync(fd);
  let badf: IoError | undefined;
  await engine.run({ op: 'read', fd, buffer: back, position: 0 }).catch((e: IoError) => (badf = e));
  assert.equal(badf?.code, 'EBADF');
  assert.equal(badf?.syscall, 'read');

  const stats = engine.stats();
  await engine.close();
  console.log(JSON.stringify({ ok: true, status, engine: { backend: engine.backend, threads: engine.threads, queueDepth: engine.queueDepth }, random, randomMs, stats }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
