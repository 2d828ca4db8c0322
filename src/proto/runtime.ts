// Support for the generated protocol modules (*.gen.ts): the codecs they
// share and the types of their program tables.

import { XdrError, type XdrReader, type XdrWriter } from '../xdr/index.js';

/** The codecs of one procedure, as found in a generated `<VERSION>_TABLE`. */
export interface ProcedureCodec<A, R> {
  /** The procedure's name without its program prefix, e.g. 'GETATTR'. */
  readonly name: string;
  readonly proc: number;
  readonly encodeArgs: (w: XdrWriter, v: A) => void;
  readonly decodeArgs: (r: XdrReader) => A;
  readonly encodeRes: (w: XdrWriter, v: R) => void;
  readonly decodeRes: (r: XdrReader) => R;
}

/** A generated program version table: procedure number -> codecs. */
export interface VersionTable {
  /** Program and version names as the spec writes them, e.g. 'NFS_PROGRAM', 'NFS_V3'. */
  readonly program: string;
  readonly version: string;
  readonly prog: number;
  readonly vers: number;
  // `any`: each entry has its own argument and result types; the precise ones
  // stay visible through the table's own (const) type.
  readonly procedures: { readonly [proc: number]: ProcedureCodec<any, any> };
}

/** The argument type of a procedure entry. */
export type ProcArgs<P> = P extends { decodeArgs(r: XdrReader): infer A } ? A : never;
/** The result type of a procedure entry. */
export type ProcRes<P> = P extends { decodeRes(r: XdrReader): infer R } ? R : never;

/** The entries of a table. */
export type ProceduresOf<T extends VersionTable> = T['procedures'][keyof T['procedures']];

/** The entry of a table with a given name, e.g. ProcedureNamed<typeof NFS_V3_TABLE, 'READ'>. */
export type ProcedureNamed<T extends VersionTable, N extends string> = Extract<ProceduresOf<T>, { readonly name: N }>;

/**
 * One handler per procedure, keyed by procedure name, each taking the decoded
 * arguments and returning (or resolving to) the results:
 * `const h: VersionHandlers<typeof MOUNT_V3_TABLE, Ctx> = { NULL() {}, MNT(path, ctx) { ... }, ... }`.
 */
export type VersionHandlers<T extends VersionTable, Ctx = void> = {
  [P in ProceduresOf<T> as P extends { readonly name: infer N extends string } ? N : never]: (args: ProcArgs<P>, ctx: Ctx) => ProcRes<P> | Promise<ProcRes<P>>;
};

/** Codecs of `void`, for procedures without arguments or results. */
export function encodeVoid(_w: XdrWriter, _v: void): void {}
export function decodeVoid(_r: XdrReader): void {}

/**
 * A linked list (`T *next` chains) as an array: each item is preceded by
 * TRUE, and FALSE ends the list. A loop, so long lists take no stack.
 */
export function encodeList<T>(w: XdrWriter, items: readonly T[], item: (w: XdrWriter, v: T) => void): void {
  for (const v of items) {
    w.bool(true);
    item(w, v);
  }
  w.bool(false);
}

/** Reads a linked list into an array; each item consumes input, so this ends. */
export function decodeList<T>(r: XdrReader, item: (r: XdrReader) => T): T[] {
  const out: T[] = [];
  while (r.bool()) out.push(item(r));
  return out;
}

/** A fixed-length array `T x[n]`: exactly `n` items, no count on the wire. */
export function encodeFixedArray<T>(w: XdrWriter, items: readonly T[], n: number, item: (w: XdrWriter, v: T) => void): void {
  if (items.length !== n) throw new XdrError(`fixed array of ${n} given ${items.length} items`);
  for (const v of items) item(w, v);
}
