// A tiny in-memory NFSv3 + MOUNT v3 (+ portmapper GETPORT) server for client
// tests that need a server to misbehave on cue: change its write verifier,
// "crash" and lose what was not committed, fail WRITEs with ENOSPC, delay or
// drop replies, answer JUKEBOX. It is flat (one directory of files) and keeps
// what a client needs: GETATTR, SETATTR, LOOKUP, ACCESS, READ, WRITE, CREATE,
// REMOVE, COMMIT, READDIRPLUS, FSSTAT, FSINFO, PATHCONF.
//
// Unstable WRITEs change `data`; COMMIT copies `data` to `stable`; crash()
// puts `stable` back and changes the verifier, as a server that lost its page
// cache would.

import { RpcServer, type CallContext, type ProcedureDef, type ProgramVersion } from '../../src/rpc/index.js';
import { NFS_V3_TABLE, nfsstat3, type fattr3, type nfs_fh3 } from '../../src/proto/nfs3.gen.js';
import { MOUNT_V3_TABLE } from '../../src/proto/mount3.gen.js';
import { PMAP_VERS_TABLE } from '../../src/proto/portmap.gen.js';
import type { ProcedureCodec, VersionTable } from '../../src/proto/runtime.js';

export interface FakeFile {
  id: number;
  name: string;
  /** What reads see (including uncommitted writes). */
  data: Buffer;
  /** What survives a crash. */
  stable: Buffer;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: number;
}

type HookResult = number | void | undefined;

export interface FakeHooks {
  /** Before a WRITE is applied: return an nfsstat3 to fail it; may delay (async). */
  write?: (file: FakeFile, offset: number, count: number, ctx: CallContext) => HookResult | Promise<HookResult>;
  /** Before a COMMIT: return an nfsstat3 to fail it; may crash the server first. */
  commit?: (file: FakeFile, ctx: CallContext) => HookResult | Promise<HookResult>;
  /** Before a READ; a promise that never settles makes the call hang. */
  read?: (file: FakeFile, offset: number, count: number) => HookResult | Promise<HookResult>;
  /** Before a GETATTR. */
  getattr?: (ctx: CallContext) => HookResult | Promise<HookResult>;
  /** Every call, with its procedure name (program NFS or MOUNT). */
  call?: (prog: 'nfs' | 'mount', name: string, ctx: CallContext) => void;
}

const ROOT_ID = 1;

function fhOf(id: number): nfs_fh3 {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(0xfa4e0000, 0);
  b.writeUInt32BE(id, 4);
  return { data: b };
}

function idOf(fh: nfs_fh3): number {
  return fh.data.length === 8 && fh.data.readUInt32BE(0) === 0xfa4e0000 ? fh.data.readUInt32BE(4) : -1;
}

/** Binds handlers by procedure name to a generated table. */
function bind<T extends VersionTable>(table: T, handlers: Record<string, (args: any, ctx: CallContext) => unknown>): ProgramVersion {
  const procedures = new Map<number, ProcedureDef>();
  for (const codec of Object.values(table.procedures) as ProcedureCodec<any, any>[]) {
    const h = handlers[codec.name];
    if (!h) continue;
    procedures.set(codec.proc, {
      name: codec.name,
      handler: async (r, ctx) => {
        const args = codec.decodeArgs(r);
        const res = await h(args, ctx);
        return (w) => codec.encodeRes(w, res);
      },
    });
  }
  return { prog: table.prog, vers: table.vers, procedures };
}

export class FakeNfsServer {
  readonly files = new Map<number, FakeFile>();
  private nextId = 2;
  private rpc: RpcServer | undefined;
  private clock = 1_700_000_000 * 1e9;
  private rootMtime = this.clock;
  /** The current write verifier. */
  verf = Buffer.from('verf0001');
  port = 0;
  hooks: FakeHooks = {};
  /** Calls by procedure name. */
  readonly calls: Record<string, number> = {};
  /** Remote ports and credentials seen. */
  readonly peers: Array<{ port: number; uid?: number; gid?: number }> = [];
  crashes = 0;
  wtmax = 1 << 20;

  constructor(readonly exportPath = '/export') {}

  /** Listen (on a fixed port after a restart). */
  async start(port = 0): Promise<number> {
    const rpc = new RpcServer({ maxInflight: 256 });
    const nfs = this.nfsHandlers();
    const mount = this.mountHandlers();
    rpc.register(bind(NFS_V3_TABLE, nfs));
    rpc.register(bind(MOUNT_V3_TABLE, mount));
    rpc.register(
      bind(PMAP_VERS_TABLE, {
        NULL: () => undefined,
        GETPORT: (m: { prog: number }) => (m.prog === NFS_V3_TABLE.prog || m.prog === MOUNT_V3_TABLE.prog ? this.port : 0),
      }),
    );
    this.port = await rpc.listen(port);
    this.rpc = rpc;
    return this.port;
  }

  /** Stop listening and drop every connection. */
  async stop(): Promise<void> {
    const rpc = this.rpc;
    this.rpc = undefined;
    await rpc?.close();
  }

  /** Lose everything not committed and take a new verifier (a server restart). */
  crash(): void {
    this.crashes++;
    for (const f of this.files.values()) f.data = Buffer.from(f.stable);
    this.verf = Buffer.from(`verf${String(this.crashes + 1).padStart(4, '0')}`);
  }

  /** Stop, crash, and listen again on the same port after `downMs`. */
  async restart(downMs = 200): Promise<void> {
    await this.stop();
    this.crash();
    await new Promise((r) => setTimeout(r, downMs));
    await this.start(this.port);
  }

  file(name: string): FakeFile | undefined {
    for (const f of this.files.values()) if (f.name === name) return f;
    return undefined;
  }

  addFile(name: string, data: Buffer, mode = 0o644): FakeFile {
    const f: FakeFile = { id: this.nextId++, name, data: Buffer.from(data), stable: Buffer.from(data), mode, uid: 0, gid: 0, mtimeNs: this.tick() };
    this.files.set(f.id, f);
    this.rootMtime = this.tick();
    return f;
  }

  private tick(): number {
    this.clock += 1000;
    return this.clock;
  }

  private time(ns: number): { seconds: number; nseconds: number } {
    return { seconds: Math.floor(ns / 1e9), nseconds: ns % 1e9 };
  }

  private attrs(id: number): fattr3 {
    if (id === ROOT_ID) {
      const t = this.time(this.rootMtime);
      return { type: 2, mode: 0o755, nlink: 2, uid: 0, gid: 0, size: 4096n, used: 4096n, rdev: { specdata1: 0, specdata2: 0 }, fsid: 7n, fileid: 1n, atime: t, mtime: t, ctime: t };
    }
    const f = this.files.get(id)!;
    const t = this.time(f.mtimeNs);
    const size = BigInt(f.data.length);
    return { type: 1, mode: f.mode, nlink: 1, uid: f.uid, gid: f.gid, size, used: size, rdev: { specdata1: 0, specdata2: 0 }, fsid: 7n, fileid: BigInt(id), atime: t, mtime: t, ctime: t };
  }

  private wcc(id: number, before: fattr3 | undefined) {
    return { before: before && { size: before.size, mtime: before.mtime, ctime: before.ctime }, after: this.attrs(id) };
  }

  private exists(id: number): boolean {
    return id === ROOT_ID || this.files.has(id);
  }

  private count(name: string, prog: 'nfs' | 'mount', ctx: CallContext): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
    if (this.calls[name] === 1 || name === 'MNT' || name === 'NULL') this.peers.push({ port: ctx.conn.remotePort, uid: ctx.authSys?.uid, gid: ctx.authSys?.gid });
    this.hooks.call?.(prog, name, ctx);
  }

  private nfsHandlers(): Record<string, (args: any, ctx: CallContext) => unknown> {
    const stale = { status: nfsstat3.NFS3ERR_STALE };
    const h: Record<string, (args: any, ctx: CallContext) => unknown> = {
      NULL: () => undefined,
      GETATTR: async (a: { object: nfs_fh3 }, ctx) => {
        const st = await this.hooks.getattr?.(ctx);
        if (st) return { status: st };
        const id = idOf(a.object);
        if (!this.exists(id)) return stale;
        return { status: 0, resok: { obj_attributes: this.attrs(id) } };
      },
      SETATTR: (a: { object: nfs_fh3; new_attributes: { mode?: number; size?: bigint } }) => {
        const id = idOf(a.object);
        const f = this.files.get(id);
        if (!f) return { status: nfsstat3.NFS3ERR_STALE, resfail: { obj_wcc: { before: undefined, after: undefined } } };
        const before = this.attrs(id);
        if (a.new_attributes.mode !== undefined) f.mode = a.new_attributes.mode;
        if (a.new_attributes.size !== undefined) {
          const n = Number(a.new_attributes.size);
          const d = Buffer.alloc(n);
          f.data.copy(d, 0, 0, Math.min(n, f.data.length));
          f.data = d;
          f.stable = Buffer.from(d);
        }
        f.mtimeNs = this.tick();
        return { status: 0, resok: { obj_wcc: this.wcc(id, before) } };
      },
      LOOKUP: (a: { what: { dir: nfs_fh3; name: string } }) => {
        if (idOf(a.what.dir) !== ROOT_ID) return { status: nfsstat3.NFS3ERR_NOTDIR, resfail: { dir_attributes: undefined } };
        const f = this.file(a.what.name);
        if (!f) return { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_attributes: this.attrs(ROOT_ID) } };
        return { status: 0, resok: { object: fhOf(f.id), obj_attributes: this.attrs(f.id), dir_attributes: this.attrs(ROOT_ID) } };
      },
      ACCESS: (a: { object: nfs_fh3; access: number }) => {
        const id = idOf(a.object);
        if (!this.exists(id)) return { status: nfsstat3.NFS3ERR_STALE, resfail: { obj_attributes: undefined } };
        return { status: 0, resok: { obj_attributes: this.attrs(id), access: a.access } };
      },
      READ: async (a: { file: nfs_fh3; offset: bigint; count: number }) => {
        const f = this.files.get(idOf(a.file));
        if (!f) return { status: nfsstat3.NFS3ERR_STALE, resfail: { file_attributes: undefined } };
        const off = Number(a.offset);
        const st = await this.hooks.read?.(f, off, a.count);
        if (st) return { status: st, resfail: { file_attributes: undefined } };
        // A copy: a later WRITE changes f.data in place while this reply may still be queued.
        const data = Buffer.from(f.data.subarray(Math.min(off, f.data.length), Math.min(off + a.count, f.data.length)));
        return { status: 0, resok: { file_attributes: this.attrs(f.id), count: data.length, eof: off + data.length >= f.data.length, data } };
      },
      WRITE: async (a: { file: nfs_fh3; offset: bigint; count: number; stable: number; data: Buffer }, ctx) => {
        const id = idOf(a.file);
        const f = this.files.get(id);
        if (!f) return { status: nfsstat3.NFS3ERR_STALE, resfail: { file_wcc: { before: undefined, after: undefined } } };
        const off = Number(a.offset);
        const before = this.attrs(id);
        const st = await this.hooks.write?.(f, off, a.data.length, ctx);
        if (st) return { status: st, resfail: { file_wcc: this.wcc(id, before) } };
        const end = off + a.data.length;
        if (end > f.data.length) {
          const d = Buffer.alloc(end);
          f.data.copy(d);
          f.data = d;
        }
        a.data.copy(f.data, off);
        f.mtimeNs = this.tick();
        if (a.stable !== 0) f.stable = Buffer.from(f.data);
        return { status: 0, resok: { file_wcc: this.wcc(id, before), count: a.data.length, committed: a.stable === 0 ? 0 : 2, verf: this.verf } };
      },
      CREATE: (a: { where: { dir: nfs_fh3; name: string }; how: { mode: number; obj_attributes?: { mode?: number } } }) => {
        const dirBefore = this.attrs(ROOT_ID);
        const existing = this.file(a.where.name);
        if (existing && a.how.mode !== 0) return { status: nfsstat3.NFS3ERR_EXIST, resfail: { dir_wcc: this.wcc(ROOT_ID, dirBefore) } };
        const f = existing ?? this.addFile(a.where.name, Buffer.alloc(0), a.how.obj_attributes?.mode ?? 0o644);
        return { status: 0, resok: { obj: fhOf(f.id), obj_attributes: this.attrs(f.id), dir_wcc: this.wcc(ROOT_ID, dirBefore) } };
      },
      REMOVE: (a: { object: { dir: nfs_fh3; name: string } }) => {
        const dirBefore = this.attrs(ROOT_ID);
        const f = this.file(a.object.name);
        if (!f) return { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_wcc: this.wcc(ROOT_ID, dirBefore) } };
        this.files.delete(f.id);
        this.rootMtime = this.tick();
        return { status: 0, resok: { dir_wcc: this.wcc(ROOT_ID, dirBefore) } };
      },
      COMMIT: async (a: { file: nfs_fh3 }, ctx) => {
        const id = idOf(a.file);
        const f = this.files.get(id);
        if (!f) return { status: nfsstat3.NFS3ERR_STALE, resfail: { file_wcc: { before: undefined, after: undefined } } };
        const before = this.attrs(id);
        const st = await this.hooks.commit?.(f, ctx);
        if (st) return { status: st, resfail: { file_wcc: this.wcc(id, before) } };
        const cur = this.files.get(id)!;
        cur.stable = Buffer.from(cur.data);
        return { status: 0, resok: { file_wcc: this.wcc(id, before), verf: this.verf } };
      },
      READDIRPLUS: (a: { dir: nfs_fh3 }) => {
        if (idOf(a.dir) !== ROOT_ID) return { status: nfsstat3.NFS3ERR_NOTDIR, resfail: { dir_attributes: undefined } };
        const entries = [...this.files.values()].map((f, i) => ({ fileid: BigInt(f.id), name: f.name, cookie: BigInt(i + 1), name_attributes: this.attrs(f.id), name_handle: fhOf(f.id) }));
        return { status: 0, resok: { dir_attributes: this.attrs(ROOT_ID), cookieverf: Buffer.alloc(8), reply: { entries, eof: true } } };
      },
      FSSTAT: (a: { fsroot: nfs_fh3 }) => ({
        status: 0,
        resok: { obj_attributes: this.attrs(idOf(a.fsroot)), tbytes: 1n << 30n, fbytes: 1n << 29n, abytes: 1n << 29n, tfiles: 1000n, ffiles: 900n, afiles: 900n, invarsec: 0 },
      }),
      FSINFO: () => ({
        status: 0,
        resok: {
          obj_attributes: this.attrs(ROOT_ID),
          rtmax: 1 << 20,
          rtpref: 1 << 20,
          rtmult: 4096,
          wtmax: this.wtmax,
          wtpref: this.wtmax,
          wtmult: 4096,
          dtpref: 8192,
          maxfilesize: 1n << 40n,
          time_delta: { seconds: 0, nseconds: 1 },
          properties: 0x1b,
        },
      }),
      PATHCONF: () => ({
        status: 0,
        resok: { obj_attributes: this.attrs(ROOT_ID), linkmax: 1, name_max: 255, no_trunc: true, chown_restricted: true, case_insensitive: false, case_preserving: true },
      }),
    };
    for (const [name, fn] of Object.entries(h)) {
      h[name] = (args, ctx) => {
        this.count(name, 'nfs', ctx);
        return fn(args, ctx);
      };
    }
    return h;
  }

  private mountHandlers(): Record<string, (args: any, ctx: CallContext) => unknown> {
    return {
      NULL: () => undefined,
      MNT: (path: string, ctx: CallContext) => {
        this.count('MNT', 'mount', ctx);
        if (path !== this.exportPath) return { fhs_status: 2 };
        return { fhs_status: 0, mountinfo: { fhandle: fhOf(ROOT_ID).data, auth_flavors: [1] } };
      },
      UMNT: (_path: string, ctx: CallContext) => {
        this.count('UMNT', 'mount', ctx);
      },
      EXPORT: () => [{ ex_dir: this.exportPath, ex_groups: [] }],
    };
  }
}

/** A URL for the fake server (ports given, so no portmapper). */
export function fakeUrl(s: FakeNfsServer, params = ''): string {
  return `nfs://127.0.0.1${s.exportPath}?version=3&nfsport=${s.port}&mountport=${s.port}${params ? '&' + params : ''}`;
}
