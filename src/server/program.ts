// Binds a generated protocol table (src/proto/*.gen.ts) to handlers written
// against decoded arguments and results, producing what RpcServer serves.
// Procedures without a handler answer PROC_UNAVAIL.

import type { CallContext, ProcedureDef, ProgramVersion } from '../rpc/index.js';
import type { ProcArgs, ProcRes, ProceduresOf, VersionTable } from '../proto/runtime.js';

/** Handlers by procedure name; any may be left out. */
export type Handlers<T extends VersionTable> = {
  [P in ProceduresOf<T> as P extends { readonly name: infer N extends string } ? N : never]?: (args: ProcArgs<P>, ctx: CallContext) => ProcRes<P> | Promise<ProcRes<P>>;
};

export interface ServeTableOptions {
  /** Procedure names that go through the duplicate request cache. */
  nonIdempotent?: readonly string[];
  flavors?: readonly number[];
}

export function serveTable<T extends VersionTable>(table: T, handlers: NoInfer<Handlers<T>>, opts: ServeTableOptions = {}): ProgramVersion {
  const procedures = new Map<number, ProcedureDef>();
  const byName = handlers as Record<string, ((args: unknown, ctx: CallContext) => unknown) | undefined>;
  for (const codec of Object.values(table.procedures)) {
    const handler = byName[codec.name];
    if (!handler) continue;
    procedures.set(codec.proc, {
      name: codec.name,
      idempotent: !opts.nonIdempotent?.includes(codec.name),
      handler: async (r, ctx) => {
        const args = codec.decodeArgs(r);
        const res = await handler(args, ctx);
        return (w) => codec.encodeRes(w, res);
      },
    });
  }
  return { prog: table.prog, vers: table.vers, procedures, flavors: opts.flavors };
}
