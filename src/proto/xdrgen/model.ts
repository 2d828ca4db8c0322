// Semantic analysis: resolves names and constants, classifies unions and
// finds linked lists, producing the model the emitter turns into TypeScript.
//
// Two mappings go beyond a literal reading of the XDR:
// - A union on a bool with one void arm and one non-void arm is optional data
//   under another name (post_op_attr, set_mode3, ...): it becomes `T | undefined`.
// - A struct with an optional field pointing back to its own type (directly,
//   `entry3 *nextentry`, or through a typedef, `mountlist ml_next`) is a
//   linked-list node. Every optional pointer to it becomes an array of nodes
//   whose link field is dropped, encoded and decoded by a loop, so a long
//   list costs no stack depth.

import type { DeclType, Declaration, Definition, Pos, Specification, TypeSpec, UnionArm, Value } from './ast.js';
import { XdrSpecError } from './lexer.js';

/** Largest length an XDR count can carry; the bound of `<>`. */
export const UNBOUNDED = 0xffffffff;

export type PrimitiveKind = 'int' | 'uint' | 'hyper' | 'uhyper' | 'bool';

/** A resolved type, as the emitter needs it. */
export type Shape =
  | { kind: PrimitiveKind }
  | { kind: 'named'; name: string }
  | { kind: 'fixedArray'; elem: Shape; size: number }
  | { kind: 'varArray'; elem: Shape; max: number }
  | { kind: 'fixedOpaque'; size: number }
  | { kind: 'varOpaque'; max: number }
  | { kind: 'string'; max: number }
  | { kind: 'optional'; elem: Shape }
  /** An optional pointer to a linked-list node: an array of nodes. */
  | { kind: 'list'; node: string };

export interface Field {
  name: string;
  shape: Shape;
}

/** What a union's discriminant is. */
export type Discriminant =
  | { kind: 'bool' }
  | { kind: 'int' | 'uint' }
  /** An enum; `type` is the name used in declarations (may be a typedef of it). */
  | { kind: 'enum'; enumName: string; type: string; values: number[] };

export interface Arm {
  /** Case values (0/1 for a bool discriminant); empty for the default arm. */
  values: number[];
  field?: Field;
}

export type Item =
  | { kind: 'const'; name: string; value: number; text: string }
  | { kind: 'enum'; name: string; members: { name: string; value: number }[] }
  | { kind: 'struct'; name: string; fields: Field[]; link?: string }
  | {
      kind: 'union';
      name: string;
      discName: string;
      disc: Discriminant;
      arms: Arm[];
      defaultArm?: Arm;
    }
  /** A bool union with one void arm: `T | undefined`, present when the discriminant is `presentWhen`. */
  | { kind: 'optionalUnion'; name: string; discName: string; presentWhen: boolean; field: Field }
  | { kind: 'typedef'; name: string; shape: Shape }
  | { kind: 'program'; name: string; number: number; versions: VersionModel[] };

export interface ProcedureModel {
  /** The name as written, e.g. NFSPROC3_GETATTR. */
  fullName: string;
  number: number;
  /** undefined for void. */
  arg?: Shape;
  result?: Shape;
}

export interface VersionModel {
  name: string;
  number: number;
  procedures: ProcedureModel[];
}

export interface Model {
  file: string;
  items: Item[];
  /** Type definitions by name (struct, union, enum, typedef). */
  types: Map<string, Item>;
}

type TypeDef = Extract<Definition, { kind: 'enum' | 'struct' | 'union' | 'typedef' }>;

export function analyze(spec: Specification): Model {
  return new Analyzer(spec).run();
}

class Analyzer {
  private readonly types = new Map<string, TypeDef>();
  private readonly consts = new Map<string, { value: Value; pos: Pos; resolved?: number; resolving?: boolean }>();
  /** Struct name -> name of its link field, for linked-list nodes. */
  private readonly listNodes = new Map<string, string>();
  private readonly file: string;

  constructor(private readonly spec: Specification) {
    this.file = spec.file;
  }

  private fail(msg: string, pos: Pos): never {
    throw new XdrSpecError(msg, this.file, pos.line, pos.col);
  }

  run(): Model {
    this.collect();
    this.findListNodes();
    const items: Item[] = [];
    const typeItems = new Map<string, Item>();
    for (const def of this.spec.definitions) {
      const item = this.item(def);
      items.push(item);
      if (def.kind !== 'const' && def.kind !== 'program') typeItems.set(def.name, item);
    }
    return { file: this.file, items, types: typeItems };
  }

  /** Gathers the names of types and constants (enum members are constants too, as in XDR). */
  private collect(): void {
    const seen = new Set<string>();
    const declare = (name: string, pos: Pos): void => {
      if (seen.has(name)) this.fail(`${name} is defined twice`, pos);
      seen.add(name);
    };
    for (const def of this.spec.definitions) {
      switch (def.kind) {
        case 'const':
          declare(def.name, def.pos);
          this.consts.set(def.name, { value: def.value, pos: def.pos });
          break;
        case 'enum':
          declare(def.name, def.pos);
          this.types.set(def.name, def);
          for (const m of def.members) {
            declare(m.name, m.pos);
            this.consts.set(m.name, { value: m.value, pos: m.pos });
          }
          break;
        case 'struct':
        case 'union':
        case 'typedef':
          declare(def.name, def.pos);
          this.types.set(def.name, def);
          break;
        case 'program':
          declare(def.name, def.pos);
          for (const v of def.versions) declare(v.name, v.pos);
          break;
      }
    }
  }

  private constValue(v: Value): number {
    if (v.kind === 'literal') return v.value;
    if (v.name === 'TRUE') return 1;
    if (v.name === 'FALSE') return 0;
    const c = this.consts.get(v.name);
    if (!c) this.fail(`unknown constant ${v.name}`, v.pos);
    if (c.resolved !== undefined) return c.resolved;
    if (c.resolving) this.fail(`constant ${v.name} is defined in terms of itself`, v.pos);
    c.resolving = true;
    c.resolved = this.constValue(c.value);
    c.resolving = false;
    return c.resolved;
  }

  /** A size or bound: a non-negative count that fits in an unsigned int. */
  private size(v: Value): number {
    const n = this.constValue(v);
    if (n < 0 || n > UNBOUNDED) this.fail(`size ${n} out of range`, v.pos);
    return n;
  }

  private lookupType(name: string, pos: Pos): TypeDef {
    const t = this.types.get(name);
    if (!t) this.fail(`unknown type ${name}`, pos);
    return t;
  }

  /** Follows typedefs that merely rename another named type. */
  private unalias(name: string, pos: Pos): TypeDef {
    let t = this.lookupType(name, pos);
    const seen = new Set<string>();
    while (t.kind === 'typedef' && t.type.kind === 'plain' && t.type.type.kind === 'named') {
      if (seen.has(t.name)) this.fail(`typedef ${t.name} refers to itself`, t.pos);
      seen.add(t.name);
      t = this.lookupType(t.type.type.name, t.type.type.pos);
    }
    return t;
  }

  /**
   * The struct an optional pointer points to, when `type` is one (written
   * `T *x`, or through typedefs: `typedef T *list; list x`).
   */
  private pointerTarget(type: DeclType, depth = 0): string | undefined {
    if (depth > 64) return undefined;
    if (type.kind === 'optional' && type.type.kind === 'named') {
      const t = this.unalias(type.type.name, type.type.pos);
      return t.kind === 'struct' ? t.name : undefined;
    }
    if (type.kind === 'plain' && type.type.kind === 'named') {
      const t = this.lookupType(type.type.name, type.type.pos);
      if (t.kind === 'typedef') return this.pointerTarget(t.type, depth + 1);
    }
    return undefined;
  }

  private findListNodes(): void {
    for (const t of this.types.values()) {
      if (t.kind !== 'struct') continue;
      const links = t.fields.filter((f) => this.pointerTarget(f.type) === t.name);
      if (links.length === 0) continue;
      if (links.length > 1) this.fail(`struct ${t.name} has several links to itself; only a singly linked list is supported`, t.pos);
      const link = links[0]!;
      if (t.fields[t.fields.length - 1] !== link) {
        this.fail(`the link field ${link.name} of the linked list ${t.name} must be its last field`, link.pos);
      }
      if (t.fields.length < 2) this.fail(`linked-list node ${t.name} carries no data`, t.pos);
      this.listNodes.set(t.name, link.name);
    }
  }

  private typeSpecShape(ts: TypeSpec): Shape {
    if (ts.kind === 'primitive') {
      switch (ts.name) {
        case 'int':
          return { kind: 'int' };
        case 'unsigned int':
          return { kind: 'uint' };
        case 'hyper':
          return { kind: 'hyper' };
        case 'unsigned hyper':
          return { kind: 'uhyper' };
        case 'bool':
          return { kind: 'bool' };
        default:
          return this.fail(`${ts.name} is not supported`, ts.pos);
      }
    }
    const t = this.unalias(ts.name, ts.pos);
    if (t.kind === 'struct' && this.listNodes.has(t.name)) {
      this.fail(`${ts.name} is a linked-list node: refer to it only through an optional pointer (${t.name} *)`, ts.pos);
    }
    return { kind: 'named', name: ts.name };
  }

  private shape(type: DeclType): Shape {
    switch (type.kind) {
      case 'plain':
        return this.typeSpecShape(type.type);
      case 'fixedArray':
        return { kind: 'fixedArray', elem: this.typeSpecShape(type.type), size: this.size(type.size) };
      case 'varArray':
        return { kind: 'varArray', elem: this.typeSpecShape(type.type), max: type.max ? this.size(type.max) : UNBOUNDED };
      case 'fixedOpaque':
        return { kind: 'fixedOpaque', size: this.size(type.size) };
      case 'varOpaque':
        return { kind: 'varOpaque', max: type.max ? this.size(type.max) : UNBOUNDED };
      case 'string':
        return { kind: 'string', max: type.max ? this.size(type.max) : UNBOUNDED };
      case 'optional': {
        const target = this.pointerTarget(type);
        if (target !== undefined && this.listNodes.has(target)) return { kind: 'list', node: target };
        return { kind: 'optional', elem: this.typeSpecShape(type.type) };
      }
    }
  }

  private field(d: Declaration): Field {
    return { name: d.name, shape: this.shape(d.type) };
  }

  /** Whether a value of this shape may be `undefined` in TypeScript. */
  private mayBeUndefined(shape: Shape, depth = 0): boolean {
    if (shape.kind === 'optional') return true;
    if (shape.kind !== 'named' || depth > 64) return false;
    const t = this.lookupType(shape.name, { line: 0, col: 0 }); // known to exist: the shape was built from it
    if (t.kind === 'typedef') return this.mayBeUndefined(this.shape(t.type), depth + 1);
    if (t.kind === 'union') return this.optionalUnionArm(t) !== undefined;
    return false;
  }

  /**
   * For a bool union with exactly one void arm and one non-void arm: the
   * non-void arm and the discriminant value that selects it.
   */
  private optionalUnionArm(u: Extract<Definition, { kind: 'union' }>): { arm: UnionArm; presentWhen: boolean } | undefined {
    const d = u.discriminant.type;
    if (d.kind !== 'plain' || d.type.kind !== 'primitive' || d.type.name !== 'bool') return undefined;
    const all = u.defaultArm ? [...u.arms, u.defaultArm] : u.arms;
    if (all.length !== 2) return undefined;
    const voids = all.filter((a) => !a.decl);
    const full = all.filter((a) => a.decl);
    if (voids.length !== 1 || full.length !== 1) return undefined;
    const arm = full[0]!;
    const other = voids[0]!;
    // The non-void arm is taken for one value; the void arm for the other.
    const labels = (a: UnionArm): number[] => a.cases.map((c) => this.constValue(c));
    if (arm.cases.length === 1) return { arm, presentWhen: labels(arm)[0] === 1 };
    if (arm.cases.length === 0 && other.cases.length === 1) return { arm, presentWhen: labels(other)[0] !== 1 };
    return undefined;
  }

  private discriminant(decl: Declaration): Discriminant {
    if (decl.type.kind !== 'plain') this.fail('a union discriminant is a plain declaration', decl.pos);
    const ts = decl.type.type;
    if (ts.kind === 'primitive') {
      if (ts.name === 'bool') return { kind: 'bool' };
      if (ts.name === 'int') return { kind: 'int' };
      if (ts.name === 'unsigned int') return { kind: 'uint' };
      this.fail(`a union cannot switch on ${ts.name}`, ts.pos);
    }
    const t = this.unalias(ts.name, ts.pos);
    if (t.kind === 'enum') {
      return { kind: 'enum', enumName: t.name, type: ts.name, values: t.members.map((m) => this.constValue(m.value)) };
    }
    if (t.kind === 'typedef' && t.type.kind === 'plain' && t.type.type.kind === 'primitive') {
      return this.discriminant({ ...decl, type: t.type });
    }
    return this.fail(`a union cannot switch on ${ts.name}`, ts.pos);
  }

  private union(def: Extract<Definition, { kind: 'union' }>): Item {
    const disc = this.discriminant(def.discriminant);
    const discName = def.discriminant.name;
    const seen = new Set<number>();
    const arms: Arm[] = def.arms.map((a) => {
      const values = a.cases.map((c) => {
        const v = this.constValue(c);
        if (seen.has(v)) this.fail(`case ${v} appears twice in union ${def.name}`, c.pos);
        seen.add(v);
        if (disc.kind === 'bool' && v !== 0 && v !== 1) this.fail(`case ${v} of a bool union`, c.pos);
        if (disc.kind === 'enum' && !disc.values.includes(v)) this.fail(`case ${v} is not a value of ${disc.enumName}`, c.pos);
        return v;
      });
      return { values, field: a.decl ? this.field(a.decl) : undefined };
    });
    const defaultArm: Arm | undefined = def.defaultArm
      ? { values: [], field: def.defaultArm.decl ? this.field(def.defaultArm.decl) : undefined }
      : undefined;
    if (disc.kind === 'bool' && defaultArm && seen.size === 2) this.fail(`the default arm of ${def.name} can never be taken`, def.defaultArm!.pos);

    const opt = this.optionalUnionArm(def);
    if (opt) {
      const field = this.field(opt.arm.decl!);
      if (this.mayBeUndefined(field.shape)) {
        this.fail(`${def.name} would be optional data of a type that may itself be absent`, opt.arm.pos);
      }
      return { kind: 'optionalUnion', name: def.name, discName, presentWhen: opt.presentWhen, field };
    }
    const names = new Set<string>([discName]);
    for (const a of [...arms, ...(defaultArm ? [defaultArm] : [])]) {
      if (!a.field) continue;
      if (names.has(a.field.name)) {
        this.fail(`union ${def.name} uses the name ${a.field.name} twice (arms and discriminant need distinct names here)`, def.pos);
      }
      names.add(a.field.name);
    }
    return { kind: 'union', name: def.name, discName, disc, arms, defaultArm };
  }

  private item(def: Definition): Item {
    switch (def.kind) {
      case 'const':
        return { kind: 'const', name: def.name, value: this.constValue(def.value), text: def.value.kind === 'literal' ? def.value.text : String(this.constValue(def.value)) };
      case 'enum':
        return {
          kind: 'enum',
          name: def.name,
          members: def.members.map((m) => {
            const value = this.constValue(m.value);
            if (value < -0x8000_0000 || value > 0x7fff_ffff) this.fail(`enum value ${value} does not fit in an int`, m.pos);
            return { name: m.name, value };
          }),
        };
      case 'struct': {
        const link = this.listNodes.get(def.name);
        const names = new Set<string>();
        for (const f of def.fields) {
          if (names.has(f.name)) this.fail(`field ${f.name} appears twice in ${def.name}`, f.pos);
          names.add(f.name);
        }
        const fields = def.fields.filter((f) => f.name !== link).map((f) => this.field(f));
        return { kind: 'struct', name: def.name, fields, link };
      }
      case 'union':
        return this.union(def);
      case 'typedef':
        return { kind: 'typedef', name: def.name, shape: this.shape(def.type) };
      case 'program': {
        const versNumbers = new Set<number>();
        const versions = def.versions.map((v): VersionModel => {
          const number = this.size(v.number);
          if (versNumbers.has(number)) this.fail(`version ${number} appears twice in ${def.name}`, v.pos);
          versNumbers.add(number);
          const procNumbers = new Set<number>();
          const procedures = v.procedures.map((p): ProcedureModel => {
            const n = this.size(p.number);
            if (procNumbers.has(n)) this.fail(`procedure ${n} appears twice in ${v.name}`, p.pos);
            procNumbers.add(n);
            return {
              fullName: p.name,
              number: n,
              arg: p.arg ? this.shape(p.arg) : undefined,
              result: p.result ? this.shape(p.result) : undefined,
            };
          });
          return { name: v.name, number, procedures };
        });
        return { kind: 'program', name: def.name, number: this.size(def.number), versions };
      }
    }
  }
}
