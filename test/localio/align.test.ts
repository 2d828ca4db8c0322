// Direct-IO planning (src/localio/align.ts), the bounce-buffer pool and the
// gate between direct and buffered writes, without IO; and how cache modes
// are named in URLs, connect() options and the CLI.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { planDirectRead, planDirectWrite } from '../../src/localio/align.js';
import { AlignedBufferPool } from '../../src/localio/buffer-pool.js';
import { bounceBufferSize, KindGate, parseCacheMode, slicePieces } from '../../src/localio/engine.js';
import { parseNfsUrl } from '../../src/client/url.js';
import { connect } from '../../src/client/index.js';
import { isAligned, native } from '../../src/native/index.js';
import { MAIN } from './helpers.js';

const alignArb = fc.integer({ min: 9, max: 16 }).map((s) => 2 ** s);
const posArb = fc.oneof(fc.integer({ min: 0, max: 1 << 22 }), fc.integer({ min: 0, max: 2 ** 40 }));
const lenArb = fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 8 << 20 }));

describe('planDirectRead', () => {
  test('aligned steps, at most one step long each, whose useful bytes tile the request in order', () => {
    fc.assert(
      fc.property(posArb, lenArb, alignArb, fc.integer({ min: 1, max: 64 }), (pos, len, align, blocks) => {
        const maxStep = align * blocks + (blocks % 3); // not always a multiple of the alignment
        const steps = planDirectRead(pos, len, align, maxStep);
        if (len === 0) return assert.equal(steps.length, 0);
        let covered = 0;
        let prevEnd = -1;
        for (const st of steps) {
          assert.equal(st.start % align, 0, 'start aligned');
          assert.equal(st.length % align, 0, 'length aligned');
          assert.ok(st.length > 0 && st.length <= maxStep, 'within one step');
          if (prevEnd >= 0) assert.equal(st.start, prevEnd, 'steps are contiguous, in file order');
          prevEnd = st.start + st.length;
          assert.equal(st.dst, covered, 'useful bytes in order, no gap');
          assert.equal(st.start + st.skip, pos + st.dst, 'the file offset of the useful bytes');
          assert.ok(st.skip + st.take <= st.length, 'useful bytes inside what is read');
          assert.ok(st.take > 0);
          covered += st.take;
        }
        assert.equal(covered, len, 'every byte of the request, once');
        // Widened by less than one block at each end.
        assert.ok(steps[0]!.skip < align);
        const last = steps[steps.length - 1]!;
        assert.ok(last.start + last.length - (pos + len) < align);
      }),
      { numRuns: 2000 },
    );
  });

  test('an aligned request is read as it is; a step smaller than a block is refused', () => {
    assert.deepEqual(planDirectRead(8192, 4096, 4096, 1 << 20), [{ start: 8192, length: 4096, skip: 0, take: 4096, dst: 0 }]);
    assert.deepEqual(planDirectRead(100, 10, 512, 4096), [{ start: 0, length: 512, skip: 100, take: 10, dst: 0 }]);
    assert.throws(() => planDirectRead(0, 10, 4096, 4000), RangeError);
    assert.throws(() => planDirectRead(0, 10, 3000, 1 << 20), RangeError);
  });
});

describe('planDirectWrite', () => {
  test('a buffered head, a direct middle of whole blocks, a buffered tail, tiling the write in file order', () => {
    fc.assert(
      fc.property(posArb, lenArb, alignArb, (pos, len, align) => {
        const parts = planDirectWrite(pos, len, align);
        if (len === 0) return assert.equal(parts.length, 0);
        let at = pos;
        for (const p of parts) {
          assert.equal(p.start, at, 'contiguous, in file order');
          assert.ok(p.length > 0);
          at += p.length;
        }
        assert.equal(at, pos + len, 'every byte once');
        const direct = parts.filter((p) => p.direct);
        assert.ok(direct.length <= 1);
        const firstBlock = Math.ceil(pos / align) * align;
        const lastBlock = Math.floor((pos + len) / align) * align;
        if (lastBlock - firstBlock >= align) {
          // As much as possible goes direct: exactly the whole blocks inside the write.
          assert.equal(direct.length, 1);
          assert.equal(direct[0]!.start, firstBlock);
          assert.equal(direct[0]!.length, lastBlock - firstBlock);
          assert.equal(direct[0]!.length % align, 0);
          assert.ok(parts.length <= 3);
          if (parts.length > 1) assert.ok(parts.filter((p) => !p.direct).every((p) => p.length < align), 'head and tail are under a block');
        } else {
          // Too small: one buffered write.
          assert.deepEqual(parts, [{ start: pos, length: len, direct: false }]);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('examples; no direct IO on the file (alignment 0) or below minDirect means buffered', () => {
    assert.deepEqual(planDirectWrite(100, 5000, 512), [
      { start: 100, length: 412, direct: false },
      { start: 512, length: 4096, direct: true },
      { start: 4608, length: 492, direct: false },
    ]);
    assert.deepEqual(planDirectWrite(0, 1 << 20, 4096), [{ start: 0, length: 1 << 20, direct: true }]);
    assert.deepEqual(planDirectWrite(4095, 4096, 4096), [{ start: 4095, length: 4096, direct: false }]);
    assert.deepEqual(planDirectWrite(0, 1 << 20, 0), [{ start: 0, length: 1 << 20, direct: false }]);
    assert.deepEqual(planDirectWrite(0, 8192, 512, 16384), [{ start: 0, length: 8192, direct: false }]);
  });
});

describe('pieces, pool and gate', () => {
  test('slicePieces takes any byte range of a list of buffers, without copying', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), { maxLength: 8 }), fc.nat(), fc.nat(), (arrays, a, b) => {
        const pieces = arrays.map((x) => Buffer.from(x));
        const whole = Buffer.concat(pieces);
        const from = whole.length === 0 ? 0 : a % (whole.length + 1);
        const len = (whole.length - from) === 0 ? 0 : b % (whole.length - from + 1);
        const got = Buffer.concat(slicePieces(pieces, from, len));
        assert.ok(got.equals(whole.subarray(from, from + len)));
      }),
    );
  });

  test('the pool lends aligned buffers it made at start, and waiters are served in order without allocating', async (t) => {
    if (!native) return t.skip('native addon unavailable: buffers are not aligned without it');
    const size = bounceBufferSize(1 << 20);
    assert.ok(size >= (1 << 20) + 8192 && size % 4096 === 0);
    const pool = new AlignedBufferPool(2 * size + 100, size, 4096);
    assert.equal(pool.buffers, 2);
    const tiny = new AlignedBufferPool(1, 8192, 4096);
    assert.equal(tiny.buffers, 1, 'at least one buffer, however small the pool');
    const a = await pool.acquire();
    const b = await pool.acquire();
    assert.equal(isAligned(a, 4096), true);
    assert.equal(isAligned(b, 4096), true);
    assert.equal(pool.tryAcquire(), undefined);
    const order: number[] = [];
    const w1 = pool.acquire().then((x) => (order.push(1), x));
    const w2 = pool.acquire().then((x) => (order.push(2), x));
    assert.equal(pool.stats().waiting, 2);
    pool.release(a);
    pool.release(b);
    const [x1, x2] = await Promise.all([w1, w2]);
    assert.deepEqual(order, [1, 2]);
    assert.ok(new Set([x1, x2]).size === 2 && [a, b].includes(x1) && [a, b].includes(x2), 'the same two buffers, lent again');
    const s = pool.stats();
    assert.equal(s.waits, 2);
    assert.equal(s.maxWaiting, 2);
    assert.equal(s.free, 0);
  });

  test('the gate never lets direct and buffered writes run together, and keeps arrival order', async () => {
    const gate = new KindGate();
    const running = [0, 0];
    const log: string[] = [];
    const run = async (kind: number, name: string, ms: number): Promise<void> => {
      const w = gate.enter(kind);
      if (w) await w;
      running[kind]!++;
      assert.equal(running[1 - kind], 0, `${name} runs alone with its kind`);
      log.push(name);
      await new Promise((r) => setTimeout(r, ms));
      running[kind]!--;
      gate.leave(kind);
    };
    await Promise.all([run(0, 'b1', 20), run(0, 'b2', 5), run(1, 'd1', 5), run(0, 'b3', 1), run(1, 'd2', 1)]);
    assert.deepEqual(log, ['b1', 'b2', 'd1', 'b3', 'd2']);
  });
});

describe('naming cache modes', () => {
  test('URL arguments localio_read= and localio_write=; a bad value is an error', () => {
    const u = parseNfsUrl('nfs://h/x?localio_read=direct&localio_write=dontcache');
    assert.equal(u.localioRead, 'direct');
    assert.equal(u.localioWrite, 'dontcache');
    assert.equal(parseNfsUrl('nfs://h/x?localio_write=buffered').localioWrite, 'buffered');
    assert.throws(() => parseNfsUrl('nfs://h/x?localio_read=fast'), /localio_read=fast is not a cache mode/);
    assert.throws(() => parseNfsUrl('nfs://h/x?localio_write='), /localio_write= is not a cache mode/);
    assert.equal(parseCacheMode('direct', 'x'), 'direct');
    assert.throws(() => parseCacheMode('DIRECT', 'x'), TypeError);
  });

  test('connect() refuses a bad mode before it mounts anything', async () => {
    await assert.rejects(connect({ host: '127.0.0.1', nfsPort: 1, mountPort: 1, localioRead: 'fast' as never }), /localioRead: 'fast' is not a cache mode/);
  });

  test('the CLI: --localio-read/--localio-write on client verbs, bench --mode; a bad mode is a usage error (2)', () => {
    for (const args of [
      ['ls', '--localio-read', 'fast', 'nfs://127.0.0.1/x'],
      ['cp', '--localio-write', 'x', 'a', 'nfs://127.0.0.1/x'],
      ['bench', '--mode', 'sometimes', 'nfs://127.0.0.1/x'],
    ]) {
      const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /must be buffered, dontcache or direct/);
    }
    const help = spawnSync(process.execPath, [MAIN, 'cat', '--help'], { encoding: 'utf8' });
    assert.match(help.stdout, /--localio-read <mode>/);
    assert.match(help.stdout, /--localio-write <mode>/);
  });
});
