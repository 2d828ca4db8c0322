// Typed calls to one program version over an RpcClient, keyed by procedure
// name and typed from the generated table:
//
//   const res = await client.nfs.call('READ', { file, offset: 0n, count: 4096 });
//   //    ^? READ3res
//   const mnt = await client.mount.call('MNT', '/export');
//
// Each call is counted by procedure name for the client's stats().

import type { XdrWriter } from '../xdr/index.js';
import type { CallOptions, ResultDecoder, RpcClient } from '../rpc/index.js';
import type { ProcArgs, ProcedureCodec, ProcedureNamed, ProceduresOf, ProcRes, VersionTable } from '../proto/runtime.js';

/** The procedure names of a table: 'NULL' | 'GETATTR' | ... */
export type ProcName<T extends VersionTable> = NameOf<ProceduresOf<T>>;
type NameOf<P> = P extends { readonly name: infer N extends string } ? N : never;
/** Arguments of a procedure by name. */
export type ArgsOf<T extends VersionTable, N extends ProcName<T>> = ProcArgs<ProcedureNamed<T, N>>;
/** Results of a procedure by name. */
export type ResOf<T extends VersionTable, N extends ProcName<T>> = ProcRes<ProcedureNamed<T, N>>;

export interface ProgramClientOptions {
  /**
   * A result that asks to be retried later (NFS3ERR_JUKEBOX): the call is
   * sent again after a growing delay, for at most `retryForMs` (0 = forever).
   */
  retryLater?: (res: unknown) => boolean;
  retryForMs?: number;
}

export class ProgramClient<T extends VersionTable> {
  private readonly byName = new Map<string, ProcedureCodec<any, any>>();
  /** Calls made, by procedure name. */
  readonly counts: Record<string, number> = {};
  /** What every call passes to the RPC client (program, version, retries). */
  private readonly callOpts: CallOptions;

  constructor(readonly rpc: RpcClient, readonly table: T, opts: ProgramClientOptions = {}) {
    for (const codec of Object.values(table.procedures) as ProcedureCodec<any, any>[]) {
      this.byName.set(codec.name, codec);
      this.counts[codec.name] = 0;
    }
    this.callOpts = { prog: table.prog, vers: table.vers };
    if (opts.retryLater) this.callOpts.retryLater = opts.retryLater;
    if (opts.retryForMs !== undefined) this.callOpts.retryForMs = opts.retryForMs;
  }

  /** Calls sent again because the server answered "try later". */
  get laterRetries(): number {
    return this.rpc.laterRetries;
  }

  /** Call procedure `name` with decoded arguments; resolves with the decoded results. */
  call<N extends ProcName<T>>(name: N, args: ArgsOf<T, N>, opts?: CallOptions): Promise<ResOf<T, N>> {
    const codec = this.codec(name);
    return this.callWith(name, (w) => codec.encodeArgs(w, args), codec.decodeRes, opts);
  }

  /**
   * Call with a hand-written argument encoder (the bytes must be what the
   * table's encoder would write); used where the payload is a list of buffers.
   */
  callEncoded<N extends ProcName<T>>(name: N, encode: (w: XdrWriter) => void, opts?: CallOptions): Promise<ResOf<T, N>> {
    return this.callWith(name, encode, this.codec(name).decodeRes, opts);
  }

  /**
   * Call with a hand-written encoder and decoder (READ: results straight
   * into what the caller keeps, with the reply's buffer to give back).
   */
  callWith<N extends ProcName<T>, R>(name: N, encode: (w: XdrWriter) => void, decode: ResultDecoder<R>, opts?: CallOptions): Promise<R> {
    const codec = this.codec(name);
    this.counts[name as string]!++;
    return this.rpc.call(codec.proc, encode, decode, opts ? { ...this.callOpts, ...opts } : this.callOpts);
  }

  private codec(name: string): ProcedureCodec<any, any> {
    const c = this.byName.get(name);
    if (!c) throw new TypeError(`${this.table.program} ${this.table.version} has no procedure ${name}`);
    return c;
  }
}
