// Recursive-descent parser for the XDR language (RFC 4506 section 6.3) and
// the program/version/procedure definitions of RFC 5531 section 12.
//
// The subset: const, enum, struct, union (with default and void arms,
// several case labels per arm), typedef, fixed and variable opaque, string,
// fixed and variable arrays, optional data (`*`), and programs. Anonymous
// enum/struct/union types inside a declaration are refused: give them a name,
// so the generated TypeScript type has one too.

import type { DeclType, Declaration, Definition, EnumMember, Pos, PrimitiveName, Procedure, Specification, TypeSpec, UnionArm, Value, Version } from './ast.js';
import { type Token, XdrSpecError, tokenize } from './lexer.js';

const KEYWORDS = new Set([
  'bool', 'case', 'const', 'default', 'double', 'quadruple', 'enum', 'float', 'hyper', 'int', 'opaque',
  'string', 'struct', 'switch', 'typedef', 'union', 'unsigned', 'void', 'program', 'version',
]);

export function parse(src: string, file: string): Specification {
  return new Parser(tokenize(src, file), file).specification();
}

/** Parses an XDR constant (decimal, 0x hexadecimal, 0 octal, optional minus). */
export function parseNumber(text: string): number | undefined {
  const neg = text.startsWith('-');
  const body = neg ? text.slice(1) : text;
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(body)) v = parseInt(body.slice(2), 16);
  else if (/^0[0-7]+$/.test(body)) v = parseInt(body.slice(1), 8);
  else if (/^(0|[1-9][0-9]*)$/.test(body)) v = parseInt(body, 10);
  else return undefined;
  if (!Number.isSafeInteger(v)) return undefined;
  return neg ? -v : v;
}

class Parser {
  private i = 0;

  constructor(private readonly toks: Token[], private readonly file: string) {}

  private get tok(): Token {
    return this.toks[this.i]!;
  }

  private pos(t: Token = this.tok): Pos {
    return { line: t.line, col: t.col };
  }

  private fail(msg: string, t: Token = this.tok): never {
    throw new XdrSpecError(msg, this.file, t.line, t.col);
  }

  private describe(t: Token): string {
    return t.kind === 'eof' ? 'end of file' : JSON.stringify(t.text);
  }

  private isPunct(p: string): boolean {
    return this.tok.kind === 'punct' && this.tok.text === p;
  }

  private isWord(w: string): boolean {
    return this.tok.kind === 'ident' && this.tok.text === w;
  }

  private expectPunct(p: string): Token {
    if (!this.isPunct(p)) this.fail(`expected "${p}", found ${this.describe(this.tok)}`);
    return this.toks[this.i++]!;
  }

  private expectWord(w: string): Token {
    if (!this.isWord(w)) this.fail(`expected "${w}", found ${this.describe(this.tok)}`);
    return this.toks[this.i++]!;
  }

  /** An identifier that is not a keyword. */
  private identifier(what: string): Token {
    const t = this.tok;
    if (t.kind !== 'ident' || KEYWORDS.has(t.text)) this.fail(`expected ${what}, found ${this.describe(t)}`);
    this.i++;
    return t;
  }

  specification(): Specification {
    const definitions: Definition[] = [];
    while (this.tok.kind !== 'eof') definitions.push(this.definition());
    return { file: this.file, definitions };
  }

  private definition(): Definition {
    const t = this.tok;
    if (t.kind !== 'ident') this.fail(`expected a definition, found ${this.describe(t)}`);
    const pos = this.pos();
    switch (t.text) {
      case 'const': {
        this.i++;
        const name = this.identifier('a constant name').text;
        this.expectPunct('=');
        const value = this.value();
        this.expectPunct(';');
        return { kind: 'const', name, value, pos };
      }
      case 'typedef': {
        this.i++;
        const decl = this.declaration();
        if (!decl) this.fail('typedef of void');
        this.expectPunct(';');
        return { kind: 'typedef', name: decl.name, type: decl.type, pos };
      }
      case 'enum': {
        this.i++;
        const name = this.identifier('an enum name').text;
        const members = this.enumBody();
        this.expectPunct(';');
        return { kind: 'enum', name, members, pos };
      }
      case 'struct': {
        this.i++;
        const name = this.identifier('a struct name').text;
        const fields = this.structBody();
        this.expectPunct(';');
        return { kind: 'struct', name, fields, pos };
      }
      case 'union': {
        this.i++;
        const name = this.identifier('a union name').text;
        const def = this.unionBody(name, pos);
        this.expectPunct(';');
        return def;
      }
      case 'program':
        return this.program();
      default:
        return this.fail(`expected a definition, found ${this.describe(t)}`);
    }
  }

  private value(): Value {
    const t = this.tok;
    const pos = this.pos();
    if (t.kind === 'number') {
      const v = parseNumber(t.text);
      if (v === undefined) this.fail(`bad constant ${t.text}`);
      this.i++;
      return { kind: 'literal', value: v, text: t.text, pos };
    }
    return { kind: 'ref', name: this.identifier('a constant or a constant name').text, pos };
  }

  private enumBody(): EnumMember[] {
    this.expectPunct('{');
    const members: EnumMember[] = [];
    for (;;) {
      const pos = this.pos();
      const name = this.identifier('an enum member name').text;
      this.expectPunct('=');
      members.push({ name, value: this.value(), pos });
      if (this.isPunct(',')) {
        this.i++;
        continue;
      }
      this.expectPunct('}');
      return members;
    }
  }

  private structBody(): Declaration[] {
    this.expectPunct('{');
    const fields: Declaration[] = [];
    do {
      const decl = this.declaration();
      if (!decl) this.fail('void is not a struct member');
      fields.push(decl);
      this.expectPunct(';');
    } while (!this.isPunct('}'));
    this.i++;
    return fields;
  }

  private unionBody(name: string, pos: Pos): Definition {
    this.expectWord('switch');
    this.expectPunct('(');
    const discriminant = this.declaration();
    if (!discriminant || discriminant.type.kind !== 'plain') this.fail('a union discriminant is a plain declaration');
    this.expectPunct(')');
    this.expectPunct('{');
    const arms: UnionArm[] = [];
    let defaultArm: UnionArm | undefined;
    while (this.isWord('case')) {
      const armPos = this.pos();
      const cases: Value[] = [];
      while (this.isWord('case')) {
        this.i++;
        cases.push(this.value());
        this.expectPunct(':');
      }
      const decl = this.declaration();
      this.expectPunct(';');
      arms.push({ cases, decl, pos: armPos });
    }
    if (arms.length === 0) this.fail('a union needs at least one case');
    if (this.isWord('default')) {
      const armPos = this.pos();
      this.i++;
      this.expectPunct(':');
      const decl = this.declaration();
      this.expectPunct(';');
      defaultArm = { cases: [], decl, pos: armPos };
    }
    this.expectPunct('}');
    return { kind: 'union', name, discriminant, arms, defaultArm, pos };
  }

  /** A declaration; undefined for `void`. */
  private declaration(): Declaration | undefined {
    const pos = this.pos();
    if (this.isWord('void')) {
      this.i++;
      return undefined;
    }
    if (this.isWord('opaque')) {
      this.i++;
      const name = this.identifier('a name').text;
      if (this.isPunct('[')) {
        this.i++;
        const size = this.value();
        this.expectPunct(']');
        return { name, type: { kind: 'fixedOpaque', size }, pos };
      }
      return { name, type: { kind: 'varOpaque', max: this.angleBound() }, pos };
    }
    if (this.isWord('string')) {
      this.i++;
      const name = this.identifier('a name').text;
      if (!this.isPunct('<')) this.fail('a string is declared with <> (string name<max>)');
      return { name, type: { kind: 'string', max: this.angleBound() }, pos };
    }
    const type = this.typeSpecifier();
    if (this.isPunct('*')) {
      this.i++;
      const name = this.identifier('a name').text;
      return { name, type: { kind: 'optional', type }, pos };
    }
    const name = this.identifier('a name').text;
    if (this.isPunct('[')) {
      this.i++;
      const size = this.value();
      this.expectPunct(']');
      return { name, type: { kind: 'fixedArray', type, size }, pos };
    }
    if (this.isPunct('<')) return { name, type: { kind: 'varArray', type, max: this.angleBound() }, pos };
    return { name, type: { kind: 'plain', type }, pos };
  }

  /** `<` [value] `>`: undefined when unbounded. */
  private angleBound(): Value | undefined {
    this.expectPunct('<');
    if (this.isPunct('>')) {
      this.i++;
      return undefined;
    }
    const v = this.value();
    this.expectPunct('>');
    return v;
  }

  private typeSpecifier(): TypeSpec {
    const t = this.tok;
    const pos = this.pos();
    if (t.kind !== 'ident') this.fail(`expected a type, found ${this.describe(t)}`);
    const prim = (name: PrimitiveName): TypeSpec => ({ kind: 'primitive', name, pos });
    switch (t.text) {
      case 'unsigned':
        this.i++;
        if (this.isWord('int')) {
          this.i++;
          return prim('unsigned int');
        }
        if (this.isWord('hyper')) {
          this.i++;
          return prim('unsigned hyper');
        }
        return prim('unsigned int'); // bare "unsigned", as C and rpcgen read it
      case 'int':
      case 'hyper':
      case 'bool':
      case 'float':
      case 'double':
        this.i++;
        return prim(t.text as PrimitiveName);
      case 'quadruple':
        return this.fail('quadruple is not supported');
      case 'enum':
      case 'struct':
      case 'union':
        return this.fail(`anonymous ${t.text} types are not supported: define a named ${t.text} and use its name`);
      default:
        return { kind: 'named', name: this.identifier('a type').text, pos };
    }
  }

  private program(): Definition {
    const pos = this.pos();
    this.expectWord('program');
    const name = this.identifier('a program name').text;
    this.expectPunct('{');
    const versions: Version[] = [];
    do versions.push(this.version());
    while (this.isWord('version'));
    this.expectPunct('}');
    this.expectPunct('=');
    const number = this.value();
    this.expectPunct(';');
    return { kind: 'program', name, number, versions, pos };
  }

  private version(): Version {
    const pos = this.pos();
    this.expectWord('version');
    const name = this.identifier('a version name').text;
    this.expectPunct('{');
    const procedures: Procedure[] = [];
    do procedures.push(this.procedure());
    while (!this.isPunct('}'));
    this.i++;
    this.expectPunct('=');
    const number = this.value();
    this.expectPunct(';');
    return { name, number, procedures, pos };
  }

  private procedure(): Procedure {
    const pos = this.pos();
    const result = this.procType();
    const name = this.identifier('a procedure name').text;
    this.expectPunct('(');
    const arg = this.procType();
    if (this.isPunct(',')) this.fail('procedures with several arguments are not supported');
    this.expectPunct(')');
    this.expectPunct('=');
    const number = this.value();
    this.expectPunct(';');
    return { name, result, arg, number, pos };
  }

  /**
   * A procedure's argument or result type: `void`, a type specifier, or
   * `string` (an unbounded string, as RFC 1833 writes rpcbind's results).
   */
  private procType(): DeclType | undefined {
    if (this.isWord('void')) {
      this.i++;
      return undefined;
    }
    if (this.isWord('string')) {
      this.i++;
      return { kind: 'string' };
    }
    return { kind: 'plain', type: this.typeSpecifier() };
  }
}
