// Tokenizer for the XDR language (RFC 4506 section 6.2) plus the program
// definitions of RFC 5531. Comments are `/* ... */` (the standard form) and
// `// ...` (accepted for convenience).

export type TokenKind = 'ident' | 'number' | 'punct' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The token's text; for numbers, the source text (parsed by the parser). */
  text: string;
  line: number;
  col: number;
}

/** An error in a spec file, with its position (line 0 when it has none). */
export class XdrSpecError extends Error {
  override name = 'XdrSpecError';

  constructor(message: string, readonly file: string, readonly line: number, readonly col: number) {
    super(line > 0 ? `${file}:${line}:${col}: ${message}` : `${file}: ${message}`);
  }
}

const PUNCT = new Set(['{', '}', '(', ')', '[', ']', '<', '>', ';', ',', '=', '*', ':']);

function isIdentStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
}

function isIdentPart(c: string): boolean {
  return isIdentStart(c) || (c >= '0' && c <= '9');
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

export function tokenize(src: string, file: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (msg: string, at = i): never => {
    throw new XdrSpecError(msg, file, line, at - lineStart + 1);
  };

  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated comment');
      for (let j = i; j < end; j++) {
        if (src[j] === '\n') {
          line++;
          lineStart = j + 1;
        }
      }
      i = end + 2;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    const col = i - lineStart + 1;
    if (isIdentStart(c)) {
      const start = i;
      while (i < src.length && isIdentPart(src[i]!)) i++;
      out.push({ kind: 'ident', text: src.slice(start, i), line, col });
      continue;
    }
    // A constant: decimal, hexadecimal (0x...) or octal (leading 0), with an
    // optional minus sign (RFC 4506 section 6.2).
    if (isDigit(c) || (c === '-' && isDigit(src[i + 1] ?? ''))) {
      const start = i;
      if (c === '-') i++;
      while (i < src.length && isIdentPart(src[i]!)) i++;
      out.push({ kind: 'number', text: src.slice(start, i), line, col });
      continue;
    }
    if (PUNCT.has(c)) {
      out.push({ kind: 'punct', text: c, line, col });
      i++;
      continue;
    }
    fail(`unexpected character ${JSON.stringify(c)}`);
  }
  out.push({ kind: 'eof', text: '', line, col: i - lineStart + 1 });
  return out;
}
