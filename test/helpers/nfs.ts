// Typed calls to MOUNT v3 and NFSv3 through RpcClient and the generated
// tables, for tests that drive a server procedure by procedure:
//
//   const c = nfsClient(server.nfsPort, ALICE);
//   const root = await mount(c, '/srv/x');
//   const r = ok(await nfsCall(c, 'LOOKUP', { what: { dir: root, name: 'a' } }));
//   expectStatus(await nfsCall(c, 'GETATTR', { object: fh(forged) }), 'NFS3ERR_BADHANDLE');

import assert from 'node:assert/strict';
import { RpcClient, type AuthSys, type CallOptions } from '../../src/rpc/index.js';
import { XdrWriter, type XdrReader } from '../../src/xdr/index.js';
import { NFS_V3_TABLE, nfsstat3, type nfs_fh3, type sattr3 } from '../../src/proto/nfs3.gen.js';
import { MOUNT_V3_TABLE, mountstat3 } from '../../src/proto/mount3.gen.js';
import type { ProcArgs, ProcRes, ProcedureCodec, ProcedureNamed, ProceduresOf, VersionTable } from '../../src/proto/runtime.js';

type NfsTable = typeof NFS_V3_TABLE;
type MountTable = typeof MOUNT_V3_TABLE;
type NameOf<T extends VersionTable> = ProceduresOf<T> extends infer P ? (P extends { readonly name: infer N extends string } ? N : never) : never;

export type NfsProcName = NameOf<NfsTable>;
export type NfsArgs<N extends NfsProcName> = ProcArgs<ProcedureNamed<NfsTable, N>>;
export type NfsRes<N extends NfsProcName> = ProcRes<ProcedureNamed<NfsTable, N>>;
export type MountProcName = NameOf<MountTable>;
export type MountArgs<N extends MountProcName> = ProcArgs<ProcedureNamed<MountTable, N>>;
export type MountRes<N extends MountProcName> = ProcRes<ProcedureNamed<MountTable, N>>;

/** AUTH_SYS identities the tests use. */
export const ROOT: AuthSys = { stamp: 1, machineName: 'test', uid: 0, gid: 0, gids: [0] };
export const ALICE: AuthSys = { stamp: 1, machineName: 'test', uid: 1001, gid: 1001, gids: [1001] };
export const BOB: AuthSys = { stamp: 1, machineName: 'test', uid: 1002, gid: 1002, gids: [1002] };

function byName(table: VersionTable): Map<string, ProcedureCodec<unknown, unknown>> {
  return new Map(Object.values(table.procedures).map((p) => [p.name, p as ProcedureCodec<unknown, unknown>]));
}
const NFS_BY_NAME = byName(NFS_V3_TABLE);
const MOUNT_BY_NAME = byName(MOUNT_V3_TABLE);

/** An RpcClient for NFSv3 (MOUNT calls pass their program explicitly). */
export function nfsClient(port: number, cred: AuthSys | undefined = ALICE, extra: { host?: string; reservedPort?: boolean; timeoutMs?: number } = {}): RpcClient {
  return new RpcClient({ host: extra.host ?? '127.0.0.1', port, prog: NFS_V3_TABLE.prog, vers: NFS_V3_TABLE.vers, cred, timeoutMs: extra.timeoutMs ?? 30_000, reservedPort: extra.reservedPort });
}

export function nfsCall<N extends NfsProcName>(client: RpcClient, name: N, args: NfsArgs<N>, opts: CallOptions = {}): Promise<NfsRes<N>> {
  const codec = NFS_BY_NAME.get(name)!;
  return client.call(codec.proc, (w) => codec.encodeArgs(w, args), codec.decodeRes, { prog: NFS_V3_TABLE.prog, vers: NFS_V3_TABLE.vers, ...opts }) as Promise<NfsRes<N>>;
}

export function mountCall<N extends MountProcName>(client: RpcClient, name: N, args: MountArgs<N>, opts: CallOptions = {}): Promise<MountRes<N>> {
  const codec = MOUNT_BY_NAME.get(name)!;
  return client.call(codec.proc, (w) => codec.encodeArgs(w, args), codec.decodeRes, { prog: MOUNT_V3_TABLE.prog, vers: MOUNT_V3_TABLE.vers, ...opts }) as Promise<MountRes<N>>;
}

/** Encoded arguments of an NFSv3 procedure (for raw records). */
export function encodeNfsArgs<N extends NfsProcName>(name: N, args: NfsArgs<N>): { proc: number; bytes: Buffer } {
  const codec = NFS_BY_NAME.get(name)!;
  const w = new XdrWriter();
  codec.encodeArgs(w, args);
  return { proc: codec.proc, bytes: w.toBuffer() };
}

export function decodeNfsRes<N extends NfsProcName>(name: N, r: XdrReader): NfsRes<N> {
  return NFS_BY_NAME.get(name)!.decodeRes(r) as NfsRes<N>;
}

const NFS_STATUS_NAMES = new Map<number, string>(Object.entries(nfsstat3).map(([k, v]) => [v, k]));
const MOUNT_STATUS_NAMES = new Map<number, string>(Object.entries(mountstat3).map(([k, v]) => [v, k]));

export function statusName(s: number): string {
  return NFS_STATUS_NAMES.get(s) ?? String(s);
}

type OkOf<R> = R extends { status: 0; resok: infer O } ? O : never;

/** The resok of an NFS3_OK reply; fails the test with the status name otherwise. */
export function ok<R extends { status: number }>(res: R, what = 'call'): OkOf<R> {
  if (res.status !== 0) assert.fail(`${what}: expected NFS3_OK, got ${statusName(res.status)}`);
  return (res as unknown as { resok: OkOf<R> }).resok;
}

/** Asserts a status by name, e.g. expectStatus(res, 'NFS3ERR_STALE'). */
export function expectStatus(res: { status: number }, want: keyof typeof nfsstat3 | (keyof typeof nfsstat3)[], what = 'call'): void {
  const wants = Array.isArray(want) ? want : [want];
  const got = statusName(res.status);
  assert.ok(wants.includes(got as keyof typeof nfsstat3), `${what}: expected ${wants.join(' or ')}, got ${got}`);
}

export function mountStatusName(s: number): string {
  return MOUNT_STATUS_NAMES.get(s) ?? String(s);
}

/** MNT and return the root handle (asserting MNT3_OK). */
export async function mount(client: RpcClient, path: string): Promise<nfs_fh3> {
  const r = await mountCall(client, 'MNT', path);
  if (r.fhs_status !== 0) assert.fail(`MNT ${path}: ${mountStatusName(r.fhs_status)}`);
  return { data: r.mountinfo.fhandle };
}

/** A sattr3 that sets only what is given. */
export function sattr(s: { mode?: number; uid?: number; gid?: number; size?: bigint; atime?: 'now' | { seconds: number; nseconds: number }; mtime?: 'now' | { seconds: number; nseconds: number } } = {}): sattr3 {
  const t = (v: 'now' | { seconds: number; nseconds: number } | undefined) => (v === undefined ? { set_it: 0 as const } : v === 'now' ? { set_it: 1 as const } : { set_it: 2 as const, time: v });
  const at = t(s.atime);
  const mt = t(s.mtime);
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    atime: at.set_it === 2 ? { set_it: 2, atime: at.time } : { set_it: at.set_it },
    mtime: mt.set_it === 2 ? { set_it: 2, mtime: mt.time } : { set_it: mt.set_it },
  };
}

export const fh = (data: Buffer): nfs_fh3 => ({ data });

/** A small NFSv3 session over one client: the calls tests make most, asserting NFS3_OK. */
export class Nfs {
  constructor(readonly client: RpcClient) {}

  call<N extends NfsProcName>(name: N, args: NfsArgs<N>): Promise<NfsRes<N>> {
    return nfsCall(this.client, name, args);
  }

  async lookup(dir: nfs_fh3, name: string): Promise<nfs_fh3> {
    return ok(await this.call('LOOKUP', { what: { dir, name } }), `LOOKUP ${name}`).object;
  }

  async getattr(obj: nfs_fh3) {
    return ok(await this.call('GETATTR', { object: obj }), 'GETATTR').obj_attributes;
  }

  async create(dir: nfs_fh3, name: string, mode = 0o644): Promise<nfs_fh3> {
    const r = ok(await this.call('CREATE', { where: { dir, name }, how: { mode: 1, obj_attributes: sattr({ mode }) } }), `CREATE ${name}`);
    assert.ok(r.obj, 'CREATE returns the handle');
    return r.obj;
  }

  async mkdir(dir: nfs_fh3, name: string, mode = 0o755): Promise<nfs_fh3> {
    const r = ok(await this.call('MKDIR', { where: { dir, name }, attributes: sattr({ mode }) }), `MKDIR ${name}`);
    assert.ok(r.obj, 'MKDIR returns the handle');
    return r.obj;
  }

  async write(file: nfs_fh3, offset: bigint, data: Buffer, stable: 0 | 1 | 2 = 2) {
    return ok(await this.call('WRITE', { file, offset, count: data.length, stable, data }), 'WRITE');
  }

  async read(file: nfs_fh3, offset: bigint, count: number) {
    return ok(await this.call('READ', { file, offset, count }), 'READ');
  }

  /** Every entry of a directory through READDIR pages of `count` bytes. */
  async readdirAll(dir: nfs_fh3, count = 4096): Promise<{ name: string; fileid: bigint; cookie: bigint }[]> {
    const out: { name: string; fileid: bigint; cookie: bigint }[] = [];
    let cookie = 0n;
    let cookieverf: Buffer = Buffer.alloc(8);
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 100_000, 'READDIR does not end');
      const r = ok(await this.call('READDIR', { dir, cookie, cookieverf, count }), 'READDIR');
      out.push(...r.reply.entries);
      if (r.reply.eof) return out;
      assert.ok(r.reply.entries.length > 0, 'a READDIR page that is not the last has entries');
      cookie = r.reply.entries[r.reply.entries.length - 1]!.cookie;
      cookieverf = r.cookieverf;
    }
  }
}
