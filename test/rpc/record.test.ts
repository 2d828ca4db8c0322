import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordDecoder, RecordTooLargeError, recordMark } from '../../src/rpc/record.js';

function frag(data: Buffer, last: boolean): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(((last ? 0x8000_0000 : 0) | data.length) >>> 0);
  return Buffer.concat([h, data]);
}

test('a single-fragment record comes out whole', () => {
  const d = new RecordDecoder(1024);
  const body = Buffer.from('hello, record');
  const out = d.push(Buffer.concat([recordMark(body.length), body]));
  assert.deepEqual(out, [body]);
  assert.equal(d.pendingBytes, 0);
});

test('multi-fragment records are reassembled, even fed one byte at a time', () => {
  const d = new RecordDecoder(1024);
  const stream = Buffer.concat([
    frag(Buffer.from('ab'), false),
    frag(Buffer.alloc(0), false), // zero-length fragments are legal
    frag(Buffer.from('cde'), true),
    frag(Buffer.from('second'), true),
  ]);
  const out: Buffer[] = [];
  for (const byte of stream) out.push(...d.push(Buffer.from([byte])));
  assert.deepEqual(out.map(String), ['abcde', 'second']);
});

test('a fragment header claiming gigabytes is refused before any of it is buffered', () => {
  const d = new RecordDecoder(1 << 20);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(0xffff_ffff);
  assert.throws(() => d.push(h), RecordTooLargeError);
  assert.ok(d.pendingBytes <= 4);
});

test('fragments adding up past the maximum are refused', () => {
  const d = new RecordDecoder(100);
  d.push(frag(Buffer.alloc(60), false));
  assert.throws(() => d.push(frag(Buffer.alloc(60), true)), RecordTooLargeError);
});

test('property: any split of a stream of records yields the same records', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (records, cuts) => {
        const stream = Buffer.concat(records.map((r) => Buffer.concat([recordMark(r.length), Buffer.from(r)])));
        const d = new RecordDecoder(1024);
        const out: Buffer[] = [];
        let off = 0;
        let i = 0;
        while (off < stream.length) {
          const n = cuts[i++ % cuts.length]!;
          out.push(...d.push(stream.subarray(off, off + n)));
          off += n;
        }
        assert.deepEqual(out.map((b) => b.toString('hex')), records.map((r) => Buffer.from(r).toString('hex')));
      },
    ),
  );
});

test('property: random bytes never make the decoder hold more than the limit plus one chunk', () => {
  const max = 4096;
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 512 }), { maxLength: 30 }), (chunks) => {
      const d = new RecordDecoder(max);
      for (const c of chunks) {
        try {
          for (const rec of d.push(Buffer.from(c))) assert.ok(rec.length <= max);
        } catch (e) {
          assert.ok(e instanceof RecordTooLargeError);
          return;
        }
        assert.ok(d.pendingBytes <= max + 4 + c.length, `holding ${d.pendingBytes}`);
      }
    }),
  );
});

test('large fragments are assembled as they arrive, in buffers from the allocator, whatever the split', () => {
  const made: Buffer[] = [];
  const alloc = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    made.push(b);
    return b;
  };
  const big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
  const small = Buffer.from('after');
  const twoFrags = Buffer.concat([frag(big.subarray(0, 100 * 1024), false), frag(big.subarray(100 * 1024), true)]);
  const stream = Buffer.concat([recordMark(big.length), big, recordMark(small.length), small, twoFrags]);
  for (const step of [1000, 4096, 64 * 1024, 65 * 1024 + 3, 200 * 1024, stream.length]) {
    made.length = 0;
    const d = new RecordDecoder(1 << 20, alloc);
    const out: Buffer[] = [];
    for (let off = 0; off < stream.length; off += step) {
      out.push(...d.push(stream.subarray(off, off + step)));
      assert.ok(d.pendingBytes <= 1 << 20);
    }
    assert.equal(out.length, 3, `step ${step}`);
    assert.ok(out[0]!.equals(big), `step ${step}: first record`);
    assert.equal(out[1]!.toString(), 'after');
    assert.ok(out[2]!.equals(big), `step ${step}: two-fragment record`);
    assert.equal(d.pendingBytes, 0);
    // A record that came in pieces is the allocator's buffer itself (the server pools those).
    if (step < big.length) assert.ok(made.includes(out[0]!), `step ${step}: allocator used`);
  }
});

test('a large fragment gets no buffer until a first part of its body has arrived', () => {
  let allocated = 0;
  const d = new RecordDecoder(1 << 20, (n) => {
    allocated += n;
    return Buffer.allocUnsafe(n);
  });
  d.push(recordMark(1 << 20));
  d.push(Buffer.alloc(1000));
  assert.equal(allocated, 0);
  assert.equal(d.pendingBytes, 1004);
  d.push(Buffer.alloc(64 * 1024));
  assert.equal(allocated, 1 << 20);
  assert.equal(d.pendingBytes, 1000 + 64 * 1024);
});

test('fillFrom 0: a large fragment gets its buffer at its header, and the body is received into it', () => {
  const big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  let allocated = 0;
  const d = new RecordDecoder(1 << 20, (n) => {
    allocated += n;
    return Buffer.allocUnsafe(n);
  }, 0);
  // A head read: the mark and a few bytes of the body.
  assert.deepEqual(d.push(Buffer.concat([recordMark(big.length), big.subarray(0, 100)])), []);
  assert.equal(allocated, big.length);
  let target = d.fillTarget();
  assert.equal(target?.length, big.length - 100);
  big.copy(target!, 0, 100);
  const out = d.push(target!);
  assert.equal(out.length, 1);
  assert.ok(out[0]!.equals(big));
  assert.equal(d.fillTarget(), undefined);
  // Small records are not given buffers of their own.
  assert.deepEqual(d.push(Buffer.concat([recordMark(3), Buffer.from('end')])).map(String), ['end']);
  assert.equal(allocated, big.length);
});

test('bytes received in place through fillTarget() complete the record without a copy', () => {
  const big = Buffer.alloc(200 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
  const stream = Buffer.concat([recordMark(big.length), big, recordMark(3), Buffer.from('end')]);
  const d = new RecordDecoder(1 << 20);
  assert.equal(d.fillTarget(), undefined, 'nothing being filled yet');
  const out: Buffer[] = [];
  let off = 0;
  // A reader that receives into the decoder's target whenever it offers one, 50 000 bytes at most per read.
  while (off < stream.length) {
    const target = d.fillTarget();
    const n = Math.min(50_000, stream.length - off, target?.length ?? Infinity);
    const into = target ?? Buffer.alloc(n);
    stream.copy(into, 0, off, off + n);
    out.push(...d.push(into.subarray(0, n)));
    off += n;
  }
  assert.equal(out.length, 2);
  assert.ok(out[0]!.equals(big));
  assert.equal(out[1]!.toString(), 'end');
  assert.equal(d.pendingBytes, 0);
});
