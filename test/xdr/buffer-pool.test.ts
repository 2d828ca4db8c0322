import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../src/xdr/buffer-pool.js';

test('a released buffer is handed out again, as a view of the same memory', () => {
  const pool = new BufferPool([64, 1024], 4);
  const a = pool.take(1000);
  assert.equal(a.buf.length, 1000);
  a.buf.fill(7);
  a.release();
  assert.equal(pool.idleCount, 1);
  const b = pool.take(500);
  assert.equal(b.buf.length, 500);
  assert.equal(b.buf.buffer, a.buf.buffer, 'same slab');
  assert.equal(pool.idleCount, 0);
});

test('sizes go to the smallest class that holds them; larger ones are not pooled', () => {
  const pool = new BufferPool([64, 1024], 4);
  const small = pool.take(64);
  const big = pool.take(65);
  assert.equal(small.buf.buffer.byteLength >= 64 && small.buf.buffer.byteLength < 1024, true);
  assert.equal(big.buf.buffer.byteLength >= 1024, true);
  const huge = pool.take(5000);
  assert.equal(huge.buf.length, 5000);
  huge.release();
  small.release();
  big.release();
  assert.equal(pool.idleCount, 2, 'only the pooled ones come back');
  // A small request never takes the big class's slab.
  assert.notEqual(pool.take(10).buf.buffer, big.buf.buffer);
});

test('releasing twice gives the memory back once', () => {
  const pool = new BufferPool([64], 4);
  const a = pool.take(10);
  a.release();
  a.release();
  assert.equal(pool.idleCount, 1);
  const b = pool.take(10);
  const c = pool.take(10);
  assert.notEqual(b.buf.buffer, c.buf.buffer, 'never handed out to two users at once');
});

test('idle slabs are bounded per class; the rest is left to the garbage collector', () => {
  const pool = new BufferPool([64], 2);
  const taken = [pool.take(1), pool.take(1), pool.take(1)];
  for (const t of taken) t.release();
  assert.equal(pool.idleCount, 2);
});
