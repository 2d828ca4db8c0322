// The protocols tsnfs speaks, one namespace each. The *.gen.ts modules are
// generated from spec/*.x by src/proto/xdrgen (`node dist/src/proto/xdrgen/main.js`).

export * as portmap from './portmap.gen.js';
export * as mount3 from './mount3.gen.js';
export * as nfs3 from './nfs3.gen.js';
export * as localio from './localio.gen.js';
export type { ProcArgs, ProcRes, ProcedureCodec, ProcedureNamed, ProceduresOf, VersionHandlers, VersionTable } from './runtime.js';
