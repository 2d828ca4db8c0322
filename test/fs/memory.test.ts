import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../src/fs/index.js';
import { ROOT, backendSuite, code, mkfile, type HarnessOptions } from './suite.js';

backendSuite('memory', async (opts: HarnessOptions = {}) => {
  const backend = new MemoryBackend(opts);
  await backend.init();
  return { backend, cleanup: () => backend.close() };
});

test('memory: a reused inode number comes with a new generation', async () => {
  const b = new MemoryBackend();
  const root = await b.root();
  const f = await mkfile(b, root, 'f');
  const fileid = (await b.getattr(f)).fileid;
  await b.remove(ROOT, root, 'f');
  const g = await mkfile(b, root, 'g');
  assert.equal((await b.getattr(g)).fileid, fileid, 'the inode number was reused');
  assert.equal(await code(b.getattr(f)), 'ESTALE');
  assert.notDeepEqual(g, f);
});

test('memory: capacity gives short writes, then ENOSPC, and comes back on remove', async () => {
  const b = new MemoryBackend({ capacity: 64n * 1024n });
  const root = await b.root();
  const f = await mkfile(b, root, 'f');
  const w = await b.write(ROOT, f, 0n, Buffer.alloc(100 * 1024, 1), 2);
  assert.equal(w.count, 64 * 1024);
  assert.equal((await b.fsstat(root)).fbytes, 0n);
  const g = await mkfile(b, root, 'g');
  assert.equal(await code(b.write(ROOT, g, 0n, Buffer.from('x'), 0)), 'ENOSPC');
  // Sparse files cost nothing.
  assert.equal((await b.setattr(ROOT, g, { size: 1n << 40n })).after?.size, 1n << 40n);
  assert.equal((await b.read(ROOT, g, (1n << 40n) - 4n, 100)).data.length, 4);
  await b.remove(ROOT, root, 'f');
  assert.equal((await b.fsstat(root)).fbytes, 64n * 1024n);
  assert.equal((await b.write(ROOT, g, 0n, Buffer.from('x'), 0)).count, 1);
});

test('memory: the number of objects is bounded', async () => {
  const b = new MemoryBackend({ maxFiles: 3 });
  const root = await b.root();
  await mkfile(b, root, 'a');
  await mkfile(b, root, 'b');
  assert.equal(await code(mkfile(b, root, 'c')), 'ENOSPC');
  assert.equal((await b.fsstat(root)).ffiles, 0n);
});

test('memory: ids of another instance are stale', async () => {
  const a = new MemoryBackend();
  const b = new MemoryBackend();
  assert.equal(await code(b.getattr(await a.root())), 'ESTALE');
  assert.equal(await code(b.getattr(Buffer.alloc(5))), 'EBADHANDLE');
});

test('memory: times are kept to the nanosecond', async () => {
  const b = new MemoryBackend();
  const f = await mkfile(b, await b.root(), 'f');
  const t = { sec: 1_700_000_000, nsec: 123_456_789 };
  assert.deepEqual((await b.setattr(ROOT, f, { mtime: t })).after?.mtime, t);
});
