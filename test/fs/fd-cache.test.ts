import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalBackend } from '../../src/fs/index.js';
import { FdCache } from '../../src/fs/fd-cache.js';
import { ROOT, mkfile } from './suite.js';

/** Descriptors of this process that point at `file`, deleted or not. */
async function fdsOn(file: string): Promise<number> {
  let n = 0;
  for (const fd of await fs.readdir('/proc/self/fd')) {
    const target = await fs.readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === file || target === `${file} (deleted)`) n++;
  }
  return n;
}

test('a file deleted on the host is not held open by the server once idle', async () => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-fdcache-'));
  const root = path.join(base, 'export');
  await fs.mkdir(root);
  const b = new LocalBackend({ root, stateDir: path.join(base, 'state') });
  await b.init();
  try {
    const node = await mkfile(b, await b.root(), 'f', ROOT, 0o644);
    await b.write(ROOT, node, 0n, Buffer.alloc(64 * 1024, 1), 0);
    const file = path.join(root, 'f');
    assert.ok((await fdsOn(file)) >= 1, 'the WRITE left its descriptor cached');
    await fs.unlink(file); // behind the server's back
    const deadline = Date.now() + 5000;
    while ((await fdsOn(file)) > 0 && Date.now() < deadline) await sleep(100);
    assert.equal(await fdsOn(file), 0, 'the deleted file is still open (its blocks stay allocated)');
  } finally {
    await b.close();
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('FdCache: a descriptor in use is never closed by the idle sweep; an idle one is', async () => {
  const closed: number[] = [];
  const cache = new FdCache(8, (fd) => void closed.push(fd), 50);
  const busy = await cache.acquire(1n, 'a', false, async () => 101);
  const idle = await cache.acquire(2n, 'b', false, async () => 102);
  cache.release(idle);
  await sleep(200);
  assert.deepEqual(closed, [102]);
  assert.equal(cache.size, 1);
  cache.release(busy);
  await sleep(200);
  assert.deepEqual(closed, [102, 101]);
  assert.equal(cache.size, 0);
  await cache.closeAll();
});
