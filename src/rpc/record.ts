// Record marking for ONC RPC over TCP (RFC 5531 section 11): each record is
// a sequence of fragments, each prefixed by a 4-byte header whose top bit
// marks the last fragment and whose low 31 bits give the fragment's length.

const LAST_FRAGMENT = 0x8000_0000;

export class RecordTooLargeError extends Error {
  override name = 'RecordTooLargeError';
}

/**
 * Reassembles records from a TCP byte stream. Fragment lengths are checked
 * against `maxRecord` before any byte of them is buffered, so a header that
 * claims gigabytes costs nothing but the connection.
 */
export class RecordDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private recordLen = 0;

  constructor(readonly maxRecord: number) {}

  /** Bytes held while waiting for the rest of a record. */
  get pendingBytes(): number {
    return this.buffered + this.recordLen;
  }

  /**
   * Feed bytes; returns the records completed by them. Throws
   * RecordTooLargeError when a record would exceed the maximum: the stream
   * cannot be trusted after that and the caller closes it.
   */
  push(data: Buffer): Buffer[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) return out;
      const header = this.peekHeader();
      const len = header & 0x7fff_ffff;
      if (this.recordLen + len > this.maxRecord) {
        throw new RecordTooLargeError(`record of at least ${this.recordLen + len} bytes exceeds limit ${this.maxRecord}`);
      }
      if (this.buffered < 4 + len) return out;
      this.take(4);
      if (len > 0) {
        this.fragments.push(this.take(len));
        this.recordLen += len;
      }
      if (header & LAST_FRAGMENT) {
        const frags = this.fragments;
        out.push(frags.length === 1 ? frags[0]! : Buffer.concat(frags, this.recordLen));
        this.fragments = [];
        this.recordLen = 0;
      }
    }
  }

  private peekHeader(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const b = Buffer.allocUnsafe(4);
    let n = 0;
    for (const c of this.chunks) {
      const k = Math.min(4 - n, c.length);
      c.copy(b, n, 0, k);
      n += k;
      if (n === 4) break;
    }
    return b.readUInt32BE(0);
  }

  /** Remove `n` buffered bytes: a view when they sit in one chunk. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - off, c.length);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** The 4-byte header of a single-fragment record of `len` bytes. */
export function recordMark(len: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE((LAST_FRAGMENT | len) >>> 0, 0);
  return b;
}
