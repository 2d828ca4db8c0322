import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirChanges } from '../../src/fs/dir-changes.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('a directory is busy exactly while a change to it is in flight', async () => {
  const c = new DirChanges();
  const a = deferred();
  const b = deferred();
  const ta = c.track(1n, a.promise);
  const tb = c.track(1n, b.promise);
  assert.equal(c.busy(1n), true);
  assert.equal(c.busy(2n), false);
  a.resolve();
  await ta;
  assert.equal(c.busy(1n), true, 'the second change is still running');
  b.reject(new Error('EEXIST'));
  await assert.rejects(tb, /EEXIST/);
  assert.equal(c.busy(1n), false, 'a failed change ends too');
  assert.equal(c.size, 0);
});

test('a rename counts for both of its directories', async () => {
  const c = new DirChanges();
  const r = deferred();
  const t = c.track([3n, 4n], r.promise);
  assert.equal(c.busy(3n) && c.busy(4n), true);
  r.resolve();
  await t;
  assert.equal(c.busy(3n) || c.busy(4n), false);
});
