// Shared helpers for the protocol codec tests.

import assert from 'node:assert/strict';
import { XdrReader, XdrWriter } from '../../src/xdr/index.js';

export type Encoder<T> = (w: XdrWriter, v: T) => void;
export type Decoder<T> = (r: XdrReader) => T;

export function encode<T>(enc: Encoder<T>, v: T): Buffer {
  const w = new XdrWriter();
  enc(w, v);
  return w.toBuffer();
}

/** Decodes the whole buffer (trailing bytes are an error). */
export function decode<T>(dec: Decoder<T>, buf: Buffer): T {
  const r = new XdrReader(buf);
  const v = dec(r);
  r.done();
  return v;
}

/** Encodes, decodes, checks the value came back unchanged; returns the bytes. */
export function roundTrip<T>(enc: Encoder<T>, dec: Decoder<T>, v: T): Buffer {
  const buf = encode(enc, v);
  assert.equal(buf.length % 4, 0, 'XDR encodings are multiples of 4 bytes');
  assert.deepStrictEqual(decode(dec, buf), v);
  return buf;
}

/** Bytes from hex, spaces allowed: hex('00000003 aabbcc00'). */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}
