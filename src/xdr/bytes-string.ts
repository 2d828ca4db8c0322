// XDR strings (file names, paths, symlink targets) are bytes, and on Linux
// not always UTF-8. They are decoded to JS strings without losing any:
// bytes that are not well-formed UTF-8 become lone surrogates U+DC80..U+DCFF
// (one per byte, as Python's "surrogateescape" does), which no well-formed
// UTF-8 decodes to, and encoding turns them back into the same bytes. So a
// name read from one reply and sent in the next call is the name the peer
// sent, and two different names never decode to the same string.

const REPLACEMENT = '\uFFFD';

/** Whether `s` holds a lone surrogate U+DC80..U+DCFF: a byte that was not UTF-8. */
export function hasEscapedBytes(s: string): boolean {
  // Pure ASCII (the common case) has none.
  if (Buffer.byteLength(s, 'utf8') === s.length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++; // a pair: one code point above U+FFFF
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) return true;
  }
  return false;
}

/** Bytes to a string: UTF-8, with each byte outside well-formed UTF-8 as U+DC80 + (byte - 0x80). */
export function decodeBytes(b: Uint8Array): string {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const s = buf.toString('utf8');
  // A replacement character is either in the bytes (EF BF BD) or marks a byte that was not UTF-8.
  if (!s.includes(REPLACEMENT) || Buffer.from(s, 'utf8').equals(buf)) return s;
  let out = '';
  let i = 0;
  while (i < buf.length) {
    const n = sequenceLength(buf, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + buf[i]!);
      i++;
    } else {
      out += buf.toString('utf8', i, i + n);
      i += n;
    }
  }
  return out;
}

/** A string to bytes: UTF-8, and each U+DC80..U+DCFF not part of a pair as the byte it stands for. */
export function encodeBytes(s: string): Buffer {
  if (!hasEscapedBytes(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      if (i > start) parts.push(Buffer.from(s.slice(start, i), 'utf8'));
      parts.push(Buffer.of(c - 0xdc00));
      start = i + 1;
    }
  }
  if (start < s.length) parts.push(Buffer.from(s.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/**
 * The length of the well-formed UTF-8 sequence at `i` (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0.
 */
function sequenceLength(b: Buffer, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0; // overlong
    else if (c === 0xed) hi = 0x9f; // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90; // overlong
    else if (c === 0xf4) hi = 0x8f; // above U+10FFFF
  } else return 0;
  if (i + n > b.length) return 0;
  const second = b[i + 1]!;
  if (second < lo || second > hi) return 0;
  for (let k = 2; k < n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return 0;
  return n;
}
