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
