import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lru } from '../../src/fs/lru.js';

test('Lru: evicts the least recently used first, through get, set and delete', () => {
  const evicted: number[] = [];
  const lru = new Lru<number, string>(3, (k) => evicted.push(k));
  for (const k of [1, 2, 3]) lru.set(k, `v${k}`);
  assert.equal(lru.get(1), 'v1'); // 1 is now the newest
  lru.set(4, 'v4');
  assert.deepEqual(evicted.splice(0), [2]);
  lru.set(3, 'v3b'); // replaced: counts as used (its old value is evicted as such)
  assert.deepEqual(evicted.splice(0), [3]);
  lru.set(5, 'v5');
  assert.deepEqual(evicted.splice(0), [1]);
  assert.equal(lru.peek(4), 'v4');
  lru.delete(4);
  assert.deepEqual(evicted.splice(0), [4]);
  lru.set(6, 'v6');
  lru.set(7, 'v7');
  assert.deepEqual(evicted.splice(0), [3]);
  assert.deepEqual([5, 6, 7].map((k) => lru.peek(k)), ['v5', 'v6', 'v7']);
  assert.equal(lru.size, 3);
});

test('Lru: weights, and a single entry heavier than the bound stays', () => {
  const lru = new Lru<string, number>(10);
  lru.set('a', 1, 4);
  lru.set('b', 2, 4);
  lru.set('c', 3, 4);
  assert.deepEqual(['a', 'b', 'c'].map((k) => lru.peek(k)), [undefined, 2, 3]);
  lru.set('big', 4, 50);
  assert.equal(lru.size, 1);
  assert.equal(lru.peek('big'), 4);
});

test('Lru: a full cache keeps its order over many more sets than its size', () => {
  const lru = new Lru<number, number>(1000);
  for (let i = 0; i < 200_000; i++) {
    lru.set(i, i);
    if (i % 7 === 0) lru.get(i - 500); // keeps some older keys alive
  }
  assert.equal(lru.size, 1000);
  // The newest 1000 sets and gets: every key from the last few hundred is there.
  for (let i = 199_500; i < 200_000; i++) assert.equal(lru.peek(i), i);
  assert.equal(lru.peek(0), undefined);
});
