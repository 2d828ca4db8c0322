import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import {
  FileHandles,
  MAX_HANDLE,
  MAX_NODE_ID,
  MIN_HANDLE,
  NFS3ERR_BADHANDLE,
  NFS3ERR_STALE,
  TAG_BYTES,
  handleErrorStatus,
  referenceTag,
} from '../../src/server/handles.js';

const secret = crypto.randomBytes(32);
const handles = new FileHandles(secret);

test('round trip for node ids of every allowed length', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: MAX_NODE_ID }), fc.nat({ max: 0xffff_ffff }), (node, exportId) => {
      const fh = handles.encodeHandle(exportId, Buffer.from(node));
      assert.ok(fh.length <= 64);
      const d = handles.decodeHandle(fh);
      assert.ok(d.ok);
      assert.equal(d.exportId, exportId);
      assert.deepEqual(d.nodeId, Buffer.from(node));
    }),
  );
});

test('a 40-byte node id fits in 64 bytes', () => {
  const fh = handles.encodeHandle(0xffff_ffff, crypto.randomBytes(40));
  assert.equal(fh.length, MAX_HANDLE);
  assert.ok(fh.length <= 64);
  assert.throws(() => handles.encodeHandle(1, Buffer.alloc(41)), RangeError);
  assert.throws(() => handles.encodeHandle(-1, Buffer.alloc(4)), RangeError);
  assert.throws(() => handles.encodeHandle(2 ** 32, Buffer.alloc(4)), RangeError);
});

test('the tag is HMAC-SHA256 truncated to 16 bytes', () => {
  for (const n of [0, 1, 16, 40]) {
    const fh = handles.encodeHandle(7, crypto.randomBytes(n));
    assert.deepEqual(fh.subarray(fh.length - TAG_BYTES), referenceTag(secret, fh.subarray(0, fh.length - TAG_BYTES)));
  }
});

test('every single-bit flip is rejected, with the right error', () => {
  for (const n of [0, 8, 40]) {
    const fh = handles.encodeHandle(0x01020304, crypto.randomBytes(n));
    for (let bit = 0; bit < fh.length * 8; bit++) {
      const bad = Buffer.from(fh);
      bad[bit >> 3]! ^= 0x80 >> (bit & 7);
      const d = handles.decodeHandle(bad);
      assert.equal(d.ok, false, `bit ${bit} of a ${fh.length}-byte handle`);
      // Version and length bytes are layout; everything else is caught by the tag.
      const byte = bit >> 3;
      const expected = byte === 0 || byte === 5 ? 'badhandle' : 'stale';
      assert.equal(d.ok === false && d.error, expected, `bit ${bit}`);
    }
  }
});

test('remembered tags: a body seen before still needs its own tag, and changing a handle changes nothing remembered', () => {
  const node = crypto.randomBytes(20);
  const fh = handles.encodeHandle(9, node);
  assert.ok(handles.decodeHandle(fh).ok);
  const forged = Buffer.from(fh);
  crypto.randomBytes(TAG_BYTES).copy(forged, forged.length - TAG_BYTES);
  assert.deepEqual(handles.decodeHandle(forged), { ok: false, error: 'stale' });
  // A caller scribbling over a handle it was given (or decoded) leaves the next one right.
  fh.fill(0, fh.length - TAG_BYTES);
  const again = handles.encodeHandle(9, node);
  assert.deepEqual(again.subarray(again.length - TAG_BYTES), referenceTag(secret, again.subarray(0, again.length - TAG_BYTES)));
  assert.ok(handles.decodeHandle(again).ok);
  // Past the bound the bodies are forgotten and their tags computed again.
  for (let i = 0; i < 5000; i++) handles.encodeHandle(1, crypto.randomBytes(8));
  assert.ok(handles.decodeHandle(again).ok);
});

test('every truncation and any extension is rejected as badhandle', () => {
  const fh = handles.encodeHandle(9, crypto.randomBytes(40));
  for (let len = 0; len < fh.length; len++) {
    assert.deepEqual(handles.decodeHandle(fh.subarray(0, len)), { ok: false, error: 'badhandle' }, `length ${len}`);
  }
  assert.deepEqual(handles.decodeHandle(Buffer.concat([fh, Buffer.alloc(1)])), { ok: false, error: 'badhandle' });
  const small = handles.encodeHandle(9, Buffer.alloc(4, 1));
  assert.deepEqual(handles.decodeHandle(Buffer.concat([small, Buffer.alloc(1)])), { ok: false, error: 'badhandle' });
  assert.equal(MIN_HANDLE, 22);
});

test('random garbage never decodes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), (bytes) => {
      assert.equal(handles.decodeHandle(Buffer.from(bytes)).ok, false);
    }),
    { numRuns: 2000 },
  );
});

test('a handle signed with another secret is stale', () => {
  const other = new FileHandles(crypto.randomBytes(32));
  const fh = other.encodeHandle(1, Buffer.from('node'));
  assert.deepEqual(handles.decodeHandle(fh), { ok: false, error: 'stale' });
  // Same secret, new instance (a restart): still valid.
  assert.ok(new FileHandles(Buffer.from(secret)).decodeHandle(handles.encodeHandle(1, Buffer.from('node'))).ok);
});

test('a handle for an export no longer served is stale', () => {
  const live = new Set([1, 2]);
  const h = new FileHandles(secret, { isExport: (id) => live.has(id) });
  const fh = h.encodeHandle(2, Buffer.from('x'));
  assert.ok(h.decodeHandle(fh).ok);
  live.delete(2);
  assert.deepEqual(h.decodeHandle(fh), { ok: false, error: 'stale' });
});

test('errors map to nfsstat3', () => {
  assert.equal(handleErrorStatus('stale'), NFS3ERR_STALE);
  assert.equal(handleErrorStatus('badhandle'), NFS3ERR_BADHANDLE);
});

test('decoding is fast enough to run on every call', () => {
  const fh = handles.encodeHandle(3, crypto.randomBytes(24));
  const n = 20000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) handles.decodeHandle(fh);
  const nsPerOp = Number(process.hrtime.bigint() - t0) / n;
  // Generous bound for slow CI machines; a few microseconds is typical.
  assert.ok(nsPerOp < 50_000, `${nsPerOp} ns per decode`);
});
