// Typed calls to one program version over an RpcClient, keyed by procedure
// name and typed from the generated table:
//
//   const res = await client.nfs.call('READ', { file, offset: 0n, count: 4096 });
//   //    ^? READ3res
//   const mnt = await client.mount.call('MNT', '/export');
//
// Each call is counted by procedure name for the client's stats().

import { setTimeout as sleep } from 'node:timers/promises';
import type { XdrWriter } from '../xdr/index.js';
import type { CallOptions, RpcClient } from '../rpc/index.js';
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
  /** Calls sent again because the server answered "try later". */
  laterRetries = 0;

  constructor(readonly rpc: RpcClient, readonly table: T, private readonly opts: ProgramClientOptions = {}) {
    for (const codec of Object.values(table.procedures) as ProcedureCodec<any, any>[]) {
      this.byName.set(codec.name, codec);
      this.counts[codec.name] = 0;
    }
  }

  /** Call procedure `name` with decoded arguments; resolves with the decoded results. */
  call<N extends ProcName<T>>(name: N, args: ArgsOf<T, N>, opts?: CallOptions): Promise<ResOf<T, N>> {
    const codec = this.codec(name);
    return this.callEncoded(name, (w) => codec.encodeArgs(w, args), opts);
  }

  /**
   * Call with a hand-written argument encoder (the bytes must be what the
   * table's encoder would write); used where the payload is a list of buffers.
   */
  async callEncoded<N extends ProcName<T>>(name: N, encode: (w: XdrWriter) => void, opts?: CallOptions): Promise<ResOf<T, N>> {
    const codec = this.codec(name);
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      this.counts[name as string] = (this.counts[name as string] ?? 0) + 1;
      const res = (await this.rpc.call(codec.proc, encode, codec.decodeRes, { prog: this.table.prog, vers: this.table.vers, ...opts })) as ResOf<T, N>;
      const retry = this.opts.retryLater;
      if (!retry || !retry(res)) return res;
      const limit = this.opts.retryForMs ?? 0;
      if (limit > 0 && Date.now() - started >= limit) return res;
      this.laterRetries++;
      await sleep(Math.min(100 * 2 ** attempt, 5000));
    }
  }

  private codec(name: string): ProcedureCodec<any, any> {
    const c = this.byName.get(name);
    if (!c) throw new TypeError(`${this.table.program} ${this.table.version} has no procedure ${name}`);
    return c;
  }
}
