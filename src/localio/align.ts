// Direct-IO planning: how a request at any offset and length becomes IO
// that O_DIRECT accepts. Pure arithmetic, no IO (the engine in engine.ts
// carries the plans out).
//
// Reads are widened: [pos, pos+len) becomes the aligned span around it,
// read in steps of at most one bounce buffer, and each step's useful bytes
// are copied out (trimmed). A step past the end of the file reads short,
// and what it got is all there is.
//
// Writes are split, never widened (widening a write would need a read of
// the bytes around it, racing with other writers): a buffered head up to
// the first aligned offset, a direct middle of whole aligned blocks, a
// buffered tail after the last aligned offset. The engine issues them in
// file order, one after another: a buffered head and a direct middle may
// share a page of the page cache, and the direct write must find the head's
// page written back, not in flight.

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function alignDown(n: number, a: number): number {
  return n - (n % a);
}

export function alignUp(n: number, a: number): number {
  const r = n % a;
  return r === 0 ? n : n + (a - r);
}

/** One direct read of a widened request. */
export interface ReadStep {
  /** File offset of the read (aligned). */
  start: number;
  /** Bytes to read (a multiple of the alignment, at most the step limit). */
  length: number;
  /** Where the useful bytes start inside what this step reads. */
  skip: number;
  /** Useful bytes of this step (copied to the caller at `dst`). */
  take: number;
  /** Offset in the caller's range ([0, len)) where they go. */
  dst: number;
}

/**
 * The aligned reads that cover [pos, pos+len), in file order, each at most
 * `maxStep` bytes (rounded down to the alignment). Empty for len 0. Throws
 * RangeError when `align` is not a power of two or `maxStep` is smaller than
 * one aligned block.
 */
export function planDirectRead(pos: number, len: number, align: number, maxStep: number): ReadStep[] {
  if (!isPowerOfTwo(align)) throw new RangeError(`alignment must be a power of two, got ${align}`);
  const step = alignDown(maxStep, align);
  if (step < align) throw new RangeError(`a step of ${maxStep} bytes cannot hold one block of ${align}`);
  const out: ReadStep[] = [];
  if (len <= 0) return out;
  const end = pos + len;
  const spanEnd = alignUp(end, align);
  for (let start = alignDown(pos, align); start < spanEnd; start += step) {
    const length = Math.min(step, spanEnd - start);
    const from = Math.max(pos, start);
    const to = Math.min(end, start + length);
    out.push({ start, length, skip: from - start, take: to - from, dst: from - pos });
  }
  return out;
}

/** A part of a split write: [start, start+length) of the file, and how it goes. */
export interface WritePart {
  start: number;
  length: number;
  direct: boolean;
}

/**
 * How a write of [pos, pos+len) goes in direct mode: a buffered head, a
 * direct middle of whole aligned blocks, a buffered tail, in file order
 * (parts of length 0 left out). One buffered part when the middle would be
 * shorter than `minDirect` (a request too small for direct IO) or when
 * `align` is 0 (no direct IO on that file).
 */
export function planDirectWrite(pos: number, len: number, align: number, minDirect = align): WritePart[] {
  if (len <= 0) return [];
  if (align === 0) return [{ start: pos, length: len, direct: false }];
  if (!isPowerOfTwo(align)) throw new RangeError(`alignment must be a power of two, got ${align}`);
  const end = pos + len;
  const a = alignUp(pos, align);
  const b = alignDown(end, align);
  if (b - a < Math.max(align, minDirect)) return [{ start: pos, length: len, direct: false }];
  const parts: WritePart[] = [];
  if (a > pos) parts.push({ start: pos, length: a - pos, direct: false });
  parts.push({ start: a, length: b - a, direct: true });
  if (end > b) parts.push({ start: b, length: end - b, direct: false });
  return parts;
}

/** Whether a read of [pos, pos+len) can go direct as it is (no widening). */
export function isAlignedRange(pos: number, len: number, align: number): boolean {
  return align > 0 && pos % align === 0 && len % align === 0 && len > 0;
}
