// Reaching an export: ports from the portmapper when not given, MOUNT v3 MNT
// for the root handle (the longest exported prefix of the path; the rest is
// looked up), AUTH_SYS credentials, and a reserved source port when running
// as root (exports marked `secure` refuse others).

import { hostname } from 'node:os';
import { RpcClient, type AuthSys } from '../rpc/index.js';
import { IPPROTO_TCP, PMAP_PORT, PMAP_VERS_TABLE } from '../proto/portmap.gen.js';
import { MOUNT_V3_TABLE } from '../proto/mount3.gen.js';
import { NFS_V3_TABLE } from '../proto/nfs3.gen.js';
import { MAX_AUX_GIDS, MAX_MACHINE_NAME } from '../rpc/message.js';
import type { Logger } from '../log.js';
import { codeOfMountStat, NfsError } from './errors.js';
import { ProgramClient } from './program.js';

export interface Credentials {
  uid: number;
  gid: number;
  /** Supplementary groups (at most 16 are sent). */
  gids: number[];
  machineName: string;
}

/** AUTH_SYS credentials of this process, with overrides. */
export function processCredentials(o: Partial<Credentials> = {}): Credentials {
  const uid = o.uid ?? process.getuid?.() ?? 65534;
  const gid = o.gid ?? process.getgid?.() ?? 65534;
  let gids = o.gids;
  if (!gids) {
    // Our own groups only when we speak as ourselves.
    gids = o.uid === undefined && o.gid === undefined ? (process.getgroups?.() ?? []).filter((g) => g !== gid) : [];
  }
  return { uid, gid, gids: gids.slice(0, MAX_AUX_GIDS), machineName: (o.machineName ?? hostname()).slice(0, MAX_MACHINE_NAME) };
}

export function authSys(c: Credentials): AuthSys {
  return { stamp: Math.floor(Date.now() / 1000) >>> 0, machineName: c.machineName, uid: c.uid, gid: c.gid, gids: c.gids };
}

export interface RpcSettings {
  host: string;
  cred: AuthSys;
  /** true/false, or undefined: reserved when root, falling back to any port when binding one fails. */
  reservedPort?: boolean;
  /** 0 = retry forever (hard). */
  timeoutMs: number;
  maxRecord: number;
  logger?: Logger;
}

/** Ask the portmapper for the TCP port of prog/vers; throws ECONNREFUSED-like NfsError when unregistered. */
export async function getPort(host: string, prog: number, vers: number, portmapPort = PMAP_PORT, timeoutMs = 10_000): Promise<number> {
  const pm = new RpcClient({ host, port: portmapPort, prog: PMAP_VERS_TABLE.prog, vers: PMAP_VERS_TABLE.vers, timeoutMs, reconnect: false });
  try {
    const getport = new ProgramClient(pm, PMAP_VERS_TABLE);
    const port = await getport.call('GETPORT', { prog, vers, prot: IPPROTO_TCP, port: 0 });
    if (port === 0) {
      throw new NfsError({ code: 'EPROGUNAVAIL', syscall: 'getport', path: `${host}:${portmapPort}`, message: `program ${prog} version ${vers} is not registered with the portmapper` });
    }
    return port;
  } finally {
    pm.close();
  }
}

/** An RpcClient connected now, with a reserved source port when asked (or when root, by default). */
export async function openRpc(s: RpcSettings, port: number, prog: number, vers: number): Promise<RpcClient> {
  const isRoot = process.getuid?.() === 0;
  const reserved = s.reservedPort ?? isRoot;
  const make = (resv: boolean): RpcClient =>
    new RpcClient({ host: s.host, port, prog, vers, cred: s.cred, timeoutMs: s.timeoutMs, reconnect: true, maxRecord: s.maxRecord, reservedPort: resv, logger: s.logger });
  let rpc = make(reserved);
  try {
    await rpc.connect();
    return rpc;
  } catch (err) {
    rpc.close();
    const code = (err as NodeJS.ErrnoException).code;
    // Binding a port below 1024 may be refused (no CAP_NET_BIND_SERVICE) even as root.
    if (reserved && s.reservedPort === undefined && (code === 'EACCES' || code === 'EPERM' || code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL')) {
      rpc = make(false);
      await rpc.connect();
      return rpc;
    }
    throw err;
  }
}

export type MountProgram = ProgramClient<typeof MOUNT_V3_TABLE>;
export type NfsProgram = ProgramClient<typeof NFS_V3_TABLE>;

export interface Mounted {
  /** The path given to MNT. */
  exportPath: string;
  fh: Buffer;
  /** What is left of the requested path below the export, as components. */
  rest: string[];
}

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function joinPath(c: string[]): string {
  return '/' + c.join('/');
}

/**
 * MNT the longest exported prefix of `path`: the path itself first, then the
 * exports the server lists (EXPORT) that are a prefix of it, longest first;
 * without a usable EXPORT, every prefix from the longest.
 */
export async function mountPath(mount: MountProgram, path: string): Promise<Mounted> {
  const want = components(path);
  let firstStatus: number | undefined;
  const tried = new Set<string>();
  const attempt = async (n: number): Promise<Mounted | undefined> => {
    const p = joinPath(want.slice(0, n));
    if (tried.has(p)) return undefined;
    tried.add(p);
    const res = await mount.call('MNT', p);
    if (res.fhs_status === 0) return { exportPath: p, fh: Buffer.from(res.mountinfo.fhandle), rest: want.slice(n) };
    firstStatus ??= res.fhs_status;
    return undefined;
  };
  const whole = await attempt(want.length);
  if (whole) return whole;

  let candidates: number[] | undefined;
  try {
    const exports = await mount.call('EXPORT', undefined);
    candidates = exports
      .map((e) => components(e.ex_dir))
      .filter((ex) => ex.length <= want.length && ex.every((c, i) => c === want[i]))
      .map((ex) => ex.length)
      .sort((a, b) => b - a);
  } catch {
    candidates = undefined;
  }
  if (!candidates || candidates.length === 0) candidates = want.map((_, i) => want.length - 1 - i);
  for (const n of candidates) {
    const m = await attempt(n);
    if (m) return m;
  }
  throw new NfsError({ code: codeOfMountStat(firstStatus ?? 2), syscall: 'mount', path, nfsStatus: firstStatus });
}
