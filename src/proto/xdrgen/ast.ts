// Syntax tree of an XDR specification, as the parser produces it. Names are
// not resolved here (XDR allows a type to be used before its definition);
// model.ts does that.

/** Where something was written, for error messages. */
export interface Pos {
  line: number;
  col: number;
}

/** A size, bound or constant: a literal or the name of a constant. */
export type Value =
  | { kind: 'literal'; value: number; /** as written, e.g. 0x0010 */ text: string; pos: Pos }
  | { kind: 'ref'; name: string; pos: Pos };

export type PrimitiveName = 'int' | 'unsigned int' | 'hyper' | 'unsigned hyper' | 'bool' | 'float' | 'double';

/** A type specifier: a built-in type or the name of a defined type. */
export type TypeSpec = { kind: 'primitive'; name: PrimitiveName; pos: Pos } | { kind: 'named'; name: string; pos: Pos };

/**
 * The shape of a declaration, without its name (RFC 4506 section 6.3,
 * "declaration"). `max` is undefined for an unbounded `<>`.
 */
export type DeclType =
  | { kind: 'plain'; type: TypeSpec }
  | { kind: 'fixedArray'; type: TypeSpec; size: Value }
  | { kind: 'varArray'; type: TypeSpec; max?: Value }
  | { kind: 'fixedOpaque'; size: Value }
  | { kind: 'varOpaque'; max?: Value }
  | { kind: 'string'; max?: Value }
  | { kind: 'optional'; type: TypeSpec };

export interface Declaration {
  name: string;
  type: DeclType;
  pos: Pos;
}

export interface EnumMember {
  name: string;
  value: Value;
  pos: Pos;
}

export interface UnionArm {
  /** Case labels; empty for the default arm. */
  cases: Value[];
  /** undefined for a `void` arm. */
  decl?: Declaration;
  pos: Pos;
}

export interface Procedure {
  name: string;
  /** undefined for `void`. */
  result?: DeclType;
  arg?: DeclType;
  number: Value;
  pos: Pos;
}

export interface Version {
  name: string;
  number: Value;
  procedures: Procedure[];
  pos: Pos;
}

export type Definition =
  | { kind: 'const'; name: string; value: Value; pos: Pos }
  | { kind: 'enum'; name: string; members: EnumMember[]; pos: Pos }
  | { kind: 'struct'; name: string; fields: Declaration[]; pos: Pos }
  | { kind: 'union'; name: string; discriminant: Declaration; arms: UnionArm[]; defaultArm?: UnionArm; pos: Pos }
  | { kind: 'typedef'; name: string; type: DeclType; pos: Pos }
  | { kind: 'program'; name: string; number: Value; versions: Version[]; pos: Pos };

export interface Specification {
  file: string;
  definitions: Definition[];
}
