// XDR encoding (RFC 4506). Small items are packed into a growing scratch
// buffer; large opaques (READ data, for instance) are kept by reference as
// separate chunks so a reply can go out with writev without copying them.

import { XdrError } from './reader.js';
import { encodeBytes } from './bytes-string.js';

/** Opaques at least this large are referenced, not copied. */
const REF_THRESHOLD = 1024;

export class XdrWriter {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private bytesBefore = 0; // total length of `chunks`

  constructor(initial = 256) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  /** Total encoded length so far. */
  get length(): number {
    return this.bytesBefore + this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.cur.length * 2, this.pos + n));
    this.cur.copy(grown, 0, 0, this.pos);
    this.cur = grown;
  }

  int(v: number): this {
    this.ensure(4);
    this.cur.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new XdrError(`bad unsigned int ${v}`);
    this.ensure(4);
    this.cur.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  hyper(v: bigint): this {
    this.ensure(8);
    this.cur.writeBigInt64BE(v, this.pos);
    this.pos += 8;
    return this;
  }

  uhyper(v: bigint | number): this {
    this.ensure(8);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new XdrError(`bad unsigned hyper ${v}`);
      this.cur.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.pos);
      this.cur.writeUInt32BE(v >>> 0, this.pos + 4);
    } else {
      this.cur.writeBigUInt64BE(v, this.pos);
    }
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.uint(v ? 1 : 0);
  }

  enum(v: number): this {
    return this.int(v);
  }

  /** Fixed-length opaque; `data` must be exactly `n` bytes. */
  opaqueFixed(data: Uint8Array, n = data.length): this {
    if (data.length !== n) throw new XdrError(`opaque[${n}] given ${data.length} bytes`);
    return this.raw(data);
  }

  /** Variable-length opaque of at most `max` bytes. */
  opaque(data: Uint8Array, max = 0xffffffff): this {
    if (data.length > max) throw new XdrError(`opaque length ${data.length} exceeds limit ${max}`);
    this.uint(data.length);
    return this.raw(data);
  }

  /** A string as UTF-8, with the escapes of non-UTF-8 bytes turned back into those bytes (see bytes-string.ts). */
  string(s: string, max = 0xffffffff): this {
    return this.opaque(encodeBytes(s), max);
  }

  array<T>(items: readonly T[], item: (w: XdrWriter, v: T) => void, max = 0xffffffff): this {
    if (items.length > max) throw new XdrError(`array length ${items.length} exceeds limit ${max}`);
    this.uint(items.length);
    for (const v of items) item(this, v);
    return this;
  }

  optional<T>(v: T | undefined | null, item: (w: XdrWriter, v: T) => void): this {
    if (v === undefined || v === null) return this.bool(false);
    this.bool(true);
    item(this, v);
    return this;
  }

  /** Append bytes plus XDR padding; large ones by reference. */
  private raw(data: Uint8Array): this {
    const n = data.length;
    const pad = (4 - (n & 3)) & 3;
    if (n >= REF_THRESHOLD) {
      this.flushCur();
      this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, n));
      this.bytesBefore += n;
      this.ensure(pad);
      this.cur.fill(0, this.pos, this.pos + pad);
      this.pos += pad;
      return this;
    }
    this.ensure(n + pad);
    this.cur.set(data, this.pos);
    this.pos += n;
    for (let i = 0; i < pad; i++) this.cur[this.pos++] = 0;
    return this;
  }

  private flushCur(): void {
    if (this.pos === 0) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.bytesBefore += this.pos;
    this.cur = this.cur.subarray(this.pos);
    this.pos = 0;
    if (this.cur.length < 64) this.cur = Buffer.allocUnsafe(256);
  }

  /** The encoding as a list of buffers (for writev). */
  chunksList(): Buffer[] {
    this.flushCur();
    return this.chunks;
  }

  /** The encoding as one buffer (copies when there are several chunks). */
  toBuffer(): Buffer {
    const list = this.chunksList();
    return list.length === 1 ? list[0]! : Buffer.concat(list, this.bytesBefore);
  }
}
