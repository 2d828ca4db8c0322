// Run by nowait-read.test.ts with TSNFS_NO_NATIVE=1: EngineIo reads on the
// fallback engine (no readNowait, no dropped pages) and checks every byte;
// prints a JSON summary (exit code 0 when every check held).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineIo } from '../../src/localio/io.js';
import { IoEngine, dropCachedPages, native, nowaitReadAvailable, readNowait } from '../../src/native/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-nowait-fallback-'));
const io = new EngineIo(new IoEngine({ threads: 2 }));
try {
  assert.equal(native, undefined);
  assert.equal(nowaitReadAvailable, false);
  const file = path.join(dir, 'f');
  const data = randomBytes(64 * 4096 + 100);
  fs.writeFileSync(file, data);
  const fd = fs.openSync(file, 'r');
  assert.equal(readNowait(fd, Buffer.alloc(4096), 0, 4096, 0), undefined);
  assert.equal(dropCachedPages(fd), false);
  let reads = 0;
  for (const [pos, len] of [
    [0, 4096],
    [12345, 8192],
    [64 * 4096 - 50, 4096],
    [data.length + 10, 4096],
  ] as const) {
    const buf = Buffer.alloc(len);
    const n = await io.read(fd, buf, 0, len, pos);
    reads++;
    assert.deepEqual(buf.subarray(0, n), data.subarray(pos, pos + len));
  }
  fs.closeSync(fd);
  const s = io.stats();
  process.stdout.write(JSON.stringify({ ok: true, kind: io.kind, reads, ...s }) + '\n');
} finally {
  await io.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
