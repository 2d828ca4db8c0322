// Record marking for ONC RPC over TCP (RFC 5531 section 11): each record is
// a sequence of fragments, each prefixed by a 4-byte header whose top bit
// marks the last fragment and whose low 31 bits give the fragment's length.

const LAST_FRAGMENT = 0x8000_0000;
/**
 * A fragment at least this long, once this much of it has arrived (by
 * default; see RecordDecoder's `fillFrom`), gets its own buffer and every
 * later chunk is copied into it as it comes: chunks die young instead of
 * waiting (and being promoted by the GC) until the whole fragment is here.
 * A bare header allocates nothing.
 */
export const STREAM_MIN = 64 * 1024;

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
  /** Bytes of chunks[0] already taken (the chunk is not sliced for each header and record). */
  private head = 0;
  private buffered = 0;
  private fragments: Buffer[] = [];
  private recordLen = 0;
  /** The large fragment being filled as it arrives (see STREAM_MIN). */
  private fill: { buf: Buffer; filled: number; last: boolean } | undefined;

  /**
   * `alloc` makes the buffers that bytes spanning several chunks are copied
   * into (Buffer.allocUnsafe by default): the server's record pool.
   * `fillFrom`: how much of a large fragment must have arrived before it gets
   * its own buffer. A client that trusts the lengths its server announces
   * (they are still checked against `maxRecord`) passes 0: the buffer is
   * made at the header, and the body is received straight into it.
   */
  constructor(
    readonly maxRecord: number,
    private readonly alloc?: (n: number) => Buffer,
    private readonly fillFrom = STREAM_MIN,
  ) {}

  /** Bytes held while waiting for the rest of a record. */
  get pendingBytes(): number {
    return this.buffered + this.recordLen + (this.fill?.filled ?? 0);
  }

  /**
   * Where the next bytes of a large fragment go, when one is being filled:
   * a reader that can choose its buffer (net's `onread`) receives straight
   * into it, and push() of those bytes then copies nothing.
   */
  fillTarget(): Buffer | undefined {
    const f = this.fill;
    return f && f.filled < f.buf.length ? f.buf.subarray(f.filled) : undefined;
  }

  /**
   * Feed bytes; returns the records completed by them. Throws
   * RecordTooLargeError when a record would exceed the maximum: the stream
   * cannot be trusted after that and the caller closes it.
   */
  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const fill = this.fill;
    if (fill) {
      const k = Math.min(data.length, fill.buf.length - fill.filled);
      // Bytes received in place (see fillTarget) are already where they belong.
      const inPlace = data.buffer === fill.buf.buffer && data.byteOffset === fill.buf.byteOffset + fill.filled;
      if (!inPlace) data.copy(fill.buf, fill.filled, 0, k);
      fill.filled += k;
      if (fill.filled < fill.buf.length) return out;
      this.fill = undefined;
      this.fragment(fill.buf, fill.last, out);
      if (k === data.length) return out;
      data = data.subarray(k);
    }
    this.chunks.push(data);
    this.buffered += data.length;
    for (;;) {
      if (this.buffered < 4) return out;
      const header = this.peekHeader();
      const len = header & 0x7fff_ffff;
      if (this.recordLen + len > this.maxRecord) {
        throw new RecordTooLargeError(`record of at least ${this.recordLen + len} bytes exceeds limit ${this.maxRecord}`);
      }
      if (this.buffered < 4 + len) {
        if (len >= STREAM_MIN && this.buffered - 4 >= this.fillFrom) this.startFill(len, (header & LAST_FRAGMENT) !== 0);
        return out;
      }
      this.skip(4);
      this.fragment(len > 0 ? this.take(len) : undefined, (header & LAST_FRAGMENT) !== 0, out);
    }
  }

  /** A whole fragment is here (undefined: an empty one). */
  private fragment(body: Buffer | undefined, last: boolean, out: Buffer[]): void {
    if (body) {
      this.fragments.push(body);
      this.recordLen += body.length;
    }
    if (last) {
      const frags = this.fragments;
      out.push(frags.length === 1 ? frags[0]! : Buffer.concat(frags, this.recordLen));
      this.fragments = [];
      this.recordLen = 0;
    }
  }

  /** Moves the buffered part of a `len`-byte fragment (all that is buffered) into its own buffer. */
  private startFill(len: number, last: boolean): void {
    this.skip(4);
    const buf = this.alloc ? this.alloc(len) : Buffer.allocUnsafe(len);
    let filled = 0;
    for (let i = 0; i < this.chunks.length; i++) filled += this.chunks[i]!.copy(buf, filled, i === 0 ? this.head : 0);
    this.chunks = [];
    this.head = 0;
    this.buffered = 0;
    this.fill = { buf, filled, last };
  }

  private peekHeader(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    const b = Buffer.allocUnsafe(4);
    let n = 0;
    for (let i = 0; i < this.chunks.length && n < 4; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.head : 0;
      const k = Math.min(4 - n, c.length - from);
      c.copy(b, n, from, from + k);
      n += k;
    }
    return b.readUInt32BE(0);
  }

  /** Remove `n` buffered bytes: a view when they sit in one chunk. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    const start = this.head;
    const avail = first.length - start;
    if (avail > n) {
      this.head += n;
      return first.subarray(start, start + n);
    }
    if (avail === n) {
      this.chunks.shift();
      this.head = 0;
      return start === 0 ? first : first.subarray(start);
    }
    const out = this.alloc ? this.alloc(n) : Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - off, c.length - this.head);
      c.copy(out, off, this.head, this.head + k);
      off += k;
      if (this.head + k === c.length) {
        this.chunks.shift();
        this.head = 0;
      } else {
        this.head += k;
      }
    }
    return out;
  }

  /** Drop `n` buffered bytes (a record mark) without making a view of them. */
  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(n, c.length - this.head);
      n -= k;
      if (this.head + k === c.length) {
        this.chunks.shift();
        this.head = 0;
      } else {
        this.head += k;
      }
    }
  }
}

/** The 4-byte header of a single-fragment record of `len` bytes. */
export function recordMark(len: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE((LAST_FRAGMENT | len) >>> 0, 0);
  return b;
}
