// Property tests over every generated decoder: arbitrary input only ever
// fails with XdrError, and whatever decodes encodes back to the same value.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { localio, mount3, nfs3, portmap } from '../../src/proto/index.js';
import type { VersionTable } from '../../src/proto/index.js';
import { XdrError, XdrReader, XdrWriter } from '../../src/xdr/index.js';

type Decode = (r: XdrReader) => unknown;
type Encode = (w: XdrWriter, v: unknown) => void;

const MODULES: Record<string, Record<string, unknown>> = { nfs3, mount3, portmap, localio };

/** name -> decoder, for every decodeX of every module and every table entry. */
function allDecoders(): Map<string, Decode> {
  const out = new Map<string, Decode>();
  for (const [mod, exports] of Object.entries(MODULES)) {
    for (const [name, v] of Object.entries(exports)) {
      if (name.startsWith('decode') && typeof v === 'function') out.set(`${mod}.${name}`, v as Decode);
      if (name.endsWith('_TABLE')) {
        for (const p of Object.values((v as VersionTable).procedures)) {
          out.set(`${mod}.${name}.${p.name}.args`, p.decodeArgs);
          out.set(`${mod}.${name}.${p.name}.res`, p.decodeRes);
        }
      }
    }
  }
  return out;
}

/** Encoder/decoder pairs (encodeX with decodeX). */
function allPairs(): [string, Encode, Decode][] {
  const out: [string, Encode, Decode][] = [];
  for (const [mod, exports] of Object.entries(MODULES)) {
    for (const [name, dec] of Object.entries(exports)) {
      if (!name.startsWith('decode') || typeof dec !== 'function') continue;
      const enc = exports[`encode${name.slice('decode'.length)}`];
      if (typeof enc === 'function') out.push([`${mod}.${name.slice('decode'.length)}`, enc as Encode, dec as Decode]);
    }
  }
  return out;
}

/**
 * Input that gets past the first checks often: 4-byte words, mostly small
 * numbers (bools, enum values, short lengths), with every byte below 0x80
 * so strings are ASCII and re-encode to the same length.
 */
const asciiByte = fc.integer({ min: 0, max: 0x7f });
const word = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => [0, 0, 0, n]) },
  { weight: 2, arbitrary: fc.tuple(asciiByte, asciiByte).map(([a, b]) => [0, 0, a, b]) },
  { weight: 1, arbitrary: fc.tuple(asciiByte, asciiByte, asciiByte, asciiByte) },
);
const structured = fc
  .array(word, { maxLength: 96 })
  .chain((words) => fc.integer({ min: 0, max: 3 }).map((cut) => Buffer.from(words.flat()).subarray(0, Math.max(0, words.length * 4 - cut))));
const random = fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a.buffer, a.byteOffset, a.length));

/** Runs a check, naming the codec in its failure. */
function named(name: string, check: () => void): void {
  try {
    check();
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
  }
}

function onlyXdrErrors(dec: Decode, buf: Buffer): void {
  try {
    dec(new XdrReader(buf));
  } catch (e) {
    if (!(e instanceof XdrError)) throw e;
  }
}

test('random bytes make every decoder succeed or throw XdrError, nothing else', () => {
  const decoders = allDecoders();
  assert.ok(decoders.size > 250, `found ${decoders.size} decoders`);
  for (const [name, dec] of decoders) {
    named(name, () => fc.assert(fc.property(fc.oneof(random, structured), (buf) => onlyXdrErrors(dec, buf)), { numRuns: 300, examples: [[Buffer.alloc(0)]] }));
  }
});

test('whatever decodes re-encodes to the same length and decodes to the same value', () => {
  const pairs = allPairs();
  assert.ok(pairs.length > 150, `found ${pairs.length} pairs`);
  let decodedSome = 0;
  for (const [name, enc, dec] of pairs) {
    named(name, () => fc.assert(
      fc.property(structured, (buf) => {
        const r = new XdrReader(buf);
        let v: unknown;
        try {
          v = dec(r);
        } catch (e) {
          if (e instanceof XdrError) return;
          throw e;
        }
        decodedSome++;
        const w = new XdrWriter();
        enc(w, v);
        const again = w.toBuffer();
        assert.equal(again.length, r.offset, `${name}: re-encoded length`);
        const r2 = new XdrReader(again);
        assert.deepStrictEqual(dec(r2), v, name);
        r2.done();
      }),
      { numRuns: 200 },
    ));
  }
  // The structured input is meant to decode often; make sure it does.
  assert.ok(decodedSome > pairs.length * 15, `only ${decodedSome} inputs decoded`);
});

test('a long run of TRUE flags with truncated items ends in XdrError', () => {
  // 1 MiB of "another entry follows" with no entry data behind it.
  const buf = Buffer.alloc(1 << 20);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32BE(1, i);
  for (const dec of [nfs3.decodedirlist3, nfs3.decodedirlistplus3, mount3.decodeexports, mount3.decodemountlist, portmap.decodepmaplist] as Decode[]) {
    assert.throws(() => dec(new XdrReader(buf)), XdrError);
  }
});
