import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { XdrReader, XdrWriter, XdrError, decodeBytes, encodeBytes, hasEscapedBytes } from '../../src/xdr/index.js';

test('primitives round-trip with RFC 4506 byte layout', () => {
  const w = new XdrWriter(8);
  w.int(-2).uint(0xfffffffe).hyper(-3n).uhyper(2n ** 64n - 1n).uhyper(2 ** 40).bool(true).enum(7);
  w.opaqueFixed(Buffer.from([1, 2, 3]), 3).opaque(Buffer.from([9])).string('héllo');
  w.array([1, 2], (x, v) => x.uint(v)).optional(5, (x, v) => x.uint(v)).optional(undefined, (x, v: number) => x.uint(v));
  const buf = w.toBuffer();
  assert.equal(buf.length % 4, 0);
  // Fixed opaque of 3 bytes is padded with one zero byte.
  assert.deepEqual(buf.subarray(40, 44), Buffer.from([1, 2, 3, 0]));
  const r = new XdrReader(buf);
  assert.equal(r.int(), -2);
  assert.equal(r.uint(), 0xfffffffe);
  assert.equal(r.hyper(), -3n);
  assert.equal(r.uhyper(), 2n ** 64n - 1n);
  assert.equal(r.uhyperNumber(), 2 ** 40);
  assert.equal(r.bool(), true);
  assert.equal(r.enum(new Set([7])), 7);
  assert.deepEqual(r.opaqueFixed(3), Buffer.from([1, 2, 3]));
  assert.deepEqual(r.opaque(10), Buffer.from([9]));
  assert.equal(r.string(20), 'héllo');
  assert.deepEqual(r.array(5, (x) => x.uint()), [1, 2]);
  assert.equal(r.optional((x) => x.uint()), 5);
  assert.equal(r.optional((x) => x.uint()), undefined);
  r.done();
});

test('variable-length opaques are views of the input, not copies', () => {
  const w = new XdrWriter();
  w.opaque(Buffer.from('abcdef'));
  const buf = w.toBuffer();
  const v = new XdrReader(buf).opaque(100);
  buf[4] = 0x7a;
  assert.equal(v.toString(), 'zbcdef');
});

test('large opaques are referenced by the writer, not copied', () => {
  const big = Buffer.alloc(64 * 1024, 1);
  const w = new XdrWriter();
  w.uint(1).opaque(big).uint(2);
  const chunks = w.chunksList();
  assert.ok(chunks.includes(big));
  assert.equal(w.length, 4 + 4 + big.length + 4);
});

test('large opaques of every length mod 4 are padded to exactly a multiple of 4', () => {
  for (const n of [1024, 1025, 1026, 1027, 4097]) {
    const data = Buffer.alloc(n, 7);
    const w = new XdrWriter();
    w.opaque(data).uint(0xabcdef01);
    const buf = w.toBuffer();
    assert.equal(buf.length, 4 + n + ((4 - (n % 4)) % 4) + 4, `length ${n}`);
    const r = new XdrReader(buf);
    assert.deepEqual(r.opaque(n), data);
    assert.equal(r.uint(), 0xabcdef01);
    r.done();
  }
});

test('lengths are checked against the bound and the data before allocating', () => {
  const huge = Buffer.from([0xff, 0xff, 0xff, 0xf0]);
  assert.throws(() => new XdrReader(huge).opaque(1024), XdrError);
  assert.throws(() => new XdrReader(huge).opaque(0xffffffff), /truncated/);
  assert.throws(() => new XdrReader(huge).array(0xffffffff, (r) => r.uint()), XdrError);
  assert.throws(() => new XdrReader(Buffer.from([0, 0, 0, 2])).bool(), XdrError);
  assert.throws(() => new XdrReader(Buffer.from([0, 0, 0, 5])).enum(new Set([1, 2])), XdrError);
  assert.throws(() => new XdrReader(Buffer.from([0, 0])).uint(), XdrError);
  assert.throws(() => new XdrWriter().opaque(Buffer.alloc(5), 4), XdrError);
});

test('property: opaque and string round-trip at every length', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.string(), (bytes, s) => {
      const w = new XdrWriter(4);
      w.opaque(bytes).string(s).uint(0xdeadbeef);
      const buf = w.toBuffer();
      assert.equal(buf.length % 4, 0);
      const r = new XdrReader(buf);
      assert.deepEqual(new Uint8Array(r.opaque(1 << 20)), bytes);
      assert.equal(r.string(1 << 20), s);
      assert.equal(r.uint(), 0xdeadbeef);
      r.done();
    }),
  );
});

test('property: any bytes decode or throw XdrError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const r = new XdrReader(Buffer.from(bytes));
      try {
        r.uint();
        r.opaque(1 << 30);
        r.array(1 << 30, (x) => x.string(255));
        r.uhyper();
      } catch (e) {
        assert.ok(e instanceof XdrError, String(e));
      }
    }),
  );
});

test('strings keep any bytes: not UTF-8 decodes to escapes that encode back to the same bytes', () => {
  const roundTrip = (b: Buffer): Buffer => {
    const w = new XdrWriter(16);
    w.string(new XdrReader(new XdrWriter(16).opaque(b).toBuffer()).string(1 << 20));
    return new XdrReader(w.toBuffer()).opaque(1 << 20);
  };
  // Latin-1 "café", a lone continuation byte, an overlong "/", an encoded surrogate, a cut-off sequence.
  for (const hex of ['636166e9', '80', 'c0af', 'eda080', 'e282', 'efbfbd', 'f4908080', 'f09f9880']) {
    const b = Buffer.from(hex, 'hex');
    assert.deepEqual(roundTrip(b), b, hex);
  }
  assert.equal(decodeBytes(Buffer.from('636166e9', 'hex')), 'caf\udce9');
  assert.equal(decodeBytes(Buffer.from('café')), 'café');
  assert.equal(hasEscapedBytes('caf\udce9'), true);
  assert.equal(hasEscapedBytes('😀 café'), false);
  // Distinct byte strings never decode to the same string (no two names alias).
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
      const [ba, bb] = [Buffer.from(a), Buffer.from(b)];
      assert.deepEqual(encodeBytes(decodeBytes(ba)), ba);
      if (!ba.equals(bb)) assert.notEqual(decodeBytes(ba), decodeBytes(bb));
    }),
    { numRuns: 2000 },
  );
  // Well-formed strings (pairs included) encode as plain UTF-8.
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), (s) => {
      assert.deepEqual(encodeBytes(s), Buffer.from(s, 'utf8'));
      assert.equal(decodeBytes(Buffer.from(s, 'utf8')), s);
    }),
  );
});
