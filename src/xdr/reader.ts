// XDR decoding (RFC 4506) over a Buffer.
// Variable-length items are returned as views into the input (no copy), and
// every length is checked against a caller-given bound and against the bytes
// actually present before anything is allocated.

import { decodeBytes } from './bytes-string.js';

export class XdrError extends Error {
  override name = 'XdrError';
}

const TWO_32 = 0x1_0000_0000n;

export class XdrReader {
  /** Current read position, relative to the start of `buf`. */
  offset: number;
  readonly end: number;

  constructor(readonly buf: Buffer, offset = 0, end = buf.length) {
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.offset) {
      throw new XdrError(`truncated ${what}: need ${n} bytes, have ${this.end - this.offset}`);
    }
  }

  int(): number {
    this.need(4, 'int');
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8, 'hyper');
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  /** An unsigned hyper as a number; values past 2^53 are an error (use `uhyper`). */
  uhyperNumber(): number {
    this.need(8, 'unsigned hyper');
    const hi = this.buf.readUInt32BE(this.offset);
    const lo = this.buf.readUInt32BE(this.offset + 4);
    if (hi > 0x1fffff) throw new XdrError('unsigned hyper too large for a number');
    this.offset += 8;
    return hi * 0x1_0000_0000 + lo;
  }

  bool(): boolean {
    const v = this.uint();
    if (v > 1) throw new XdrError(`bad bool ${v}`);
    return v === 1;
  }

  /** An enum value, checked against the allowed set when one is given. */
  enum<T extends number>(allowed?: ReadonlySet<number>): T {
    const v = this.int();
    if (allowed && !allowed.has(v)) throw new XdrError(`bad enum value ${v}`);
    return v as T;
  }

  /** Fixed-length opaque: a view of `n` bytes, padding skipped. */
  opaqueFixed(n: number): Buffer {
    const padded = pad4(n);
    this.need(padded, `opaque[${n}]`);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += padded;
    return v;
  }

  /** Variable-length opaque of at most `max` bytes: a view, not a copy. */
  opaque(max: number): Buffer {
    const n = this.uint();
    if (n > max) throw new XdrError(`opaque length ${n} exceeds limit ${max}`);
    return this.opaqueFixed(n);
  }

  /** A string of at most `max` bytes: UTF-8, with any other bytes kept as escapes (see bytes-string.ts). */
  string(max: number): string {
    return decodeBytes(this.opaque(max));
  }

  /** Variable-length array of at most `max` elements. */
  array<T>(max: number, item: (r: XdrReader) => T): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array length ${n} exceeds limit ${max}`);
    // Every XDR item takes at least 4 bytes: refuse counts the input cannot hold.
    if (n * 4 > this.remaining) throw new XdrError(`array length ${n} exceeds the data present`);
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }

  arrayFixed<T>(n: number, item: (r: XdrReader) => T): T[] {
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }

  /** Optional data (`*T` in XDR): a bool, then the item when true. */
  optional<T>(item: (r: XdrReader) => T): T | undefined {
    return this.bool() ? item(this) : undefined;
  }

  /** Skip `n` bytes (padded to 4). */
  skip(n: number): void {
    const padded = pad4(n);
    this.need(padded, 'skip');
    this.offset += padded;
  }

  /** Throws unless every byte was consumed (arguments with trailing garbage). */
  done(): void {
    if (this.offset !== this.end) throw new XdrError(`${this.end - this.offset} trailing bytes`);
  }
}

/** `n` rounded up to a multiple of 4, in plain arithmetic: lengths may exceed 2^31. */
function pad4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/** Split an unsigned 64-bit value into 32-bit halves (for writers). */
export function splitU64(v: bigint): [number, number] {
  return [Number((v >> 32n) & 0xffffffffn), Number(v % TWO_32)];
}
