// The tsnfs NFSv3 client: connect() to an export and use it through an
// fs-like API (NfsClient), or make typed protocol calls (client.nfs.call,
// client.mount.call).

import type { Logger } from '../log.js';
import { MOUNT_V3_TABLE } from '../proto/mount3.gen.js';
import { NFS_V3_TABLE, nfsstat3, type fattr3, type nfs_fh3 } from '../proto/nfs3.gen.js';
import { authSys, getPort, mountPath, openRpc, processCredentials } from './connect.js';
import { NfsClient, pathComponents, type ClientTuning } from './client.js';
import { codeError, NfsStatusError, toNfsError } from './errors.js';
import { ProgramClient } from './program.js';
import { parseNfsUrl, type NfsUrl } from './url.js';
import type { RpcClient } from '../rpc/index.js';
import { LocalioClient } from '../localio/client.js';
import { parseCacheMode, type CacheMode } from '../localio/engine.js';

export { NfsClient, pathComponents } from './client.js';
export type { LocalioClientStats, LocalioIoStats } from '../localio/client.js';
export type { CacheMode, LocalioEngineStats } from '../localio/engine.js';
export type { ClientStats, ClientTuning, LocalioAttachment, MkdirOptions, ReaddirOptions, RmOptions } from './client.js';
export { NfsFileHandle, parseOpenFlags } from './file.js';
export type { OpenMode } from './file.js';
export { NfsReadStream, NfsWriteStream } from './streams.js';
export type { ReadStreamOptions, WriteStreamOptions } from './streams.js';
export { NfsStats, NfsDirent, FileType } from './stat.js';
export type { NfsStatFs } from './stat.js';
export { NfsError, NfsStatusError, codeOfNfsStat, codeOfMountStat, errnoOf, toNfsError } from './errors.js';
export { parseNfsUrl, formatNfsUrl } from './url.js';
export type { NfsUrl } from './url.js';
export { ProgramClient } from './program.js';
export type { ArgsOf, ProcName, ResOf } from './program.js';
export { DirtyAccountant } from './dirty.js';
export type { DirtyLimits } from './dirty.js';
export { RpcTransport } from './transport.js';
export type { CommitResult, DataTransport, ReadResult, StableHow, WriteResult } from './transport.js';
export { AttrCache } from './attr-cache.js';
export type { AttrTimeouts } from './attr-cache.js';
export { getPort, processCredentials } from './connect.js';
export type { Credentials } from './connect.js';

/** How to reach an export (what an nfs:// URL says, and more). */
export interface ConnectOptions extends ClientTuning {
  host: string;
  /** The path to mount: an exported path, or a directory below one (default '/'). */
  path?: string;
  /** NFS and MOUNT ports; asked of the portmapper when absent. */
  nfsPort?: number;
  mountPort?: number;
  /** The portmapper's port (default 111). */
  portmapPort?: number;
  /** AUTH_SYS identity (default: this process's uid, gid and groups). */
  uid?: number;
  gid?: number;
  gids?: number[];
  machineName?: string;
  /**
   * Use a source port below 1024 (exports marked `secure` want one). Default:
   * when running as root, falling back to any port if binding one fails.
   */
  reservedPort?: boolean;
  /**
   * Soft mount: a call that gets no answer within `timeoutMs` fails (ETIMEDOUT).
   * Default hard: calls wait and are sent again after reconnecting, forever,
   * as an NFS hard mount.
   */
  soft?: boolean;
  /** Per-call limit of a soft mount in ms (default 30 s). Ignored when hard. */
  timeoutMs?: number;
  /** Limit for the mount itself (portmapper, MNT, first calls), in ms (default 30 s). */
  mountTimeoutMs?: number;
  /**
   * LOCALIO: when the server proves it runs on this host, file data goes
   * through its files directly (default on; `localio=0` in URLs turns it off).
   */
  localio?: boolean;
  /** LOCALIO's registry directory (default: TSNFS_LOCALIO_REGISTRY, /run/tsnfs/localio as root, else under XDG_RUNTIME_DIR). */
  localioRegistry?: string;
  /**
   * How LOCALIO reads and writes use the server's page cache: 'buffered'
   * (default for both), 'dontcache' (RWF_DONTCACHE: the pages are dropped
   * after the IO; buffered where the kernel or file system lacks it) or
   * 'direct' (O_DIRECT, split or widened to the file's alignment; buffered
   * where the file system has no direct IO). URL: `localio_read=`, `localio_write=`.
   */
  localioRead?: CacheMode;
  localioWrite?: CacheMode;
  /** Bytes of aligned bounce buffers reserved for direct mode (default: 8 max-size IOs; at least one). */
  localioBufferPool?: number;
  logger?: Logger;
}

/** ConnectOptions from a parsed nfs:// URL. */
export function optionsFromUrl(u: NfsUrl): ConnectOptions {
  const o: ConnectOptions = { host: u.host, path: u.path };
  if (u.nfsPort !== undefined) o.nfsPort = u.nfsPort;
  if (u.mountPort !== undefined) o.mountPort = u.mountPort;
  if (u.portmapPort !== undefined) o.portmapPort = u.portmapPort;
  if (u.uid !== undefined) o.uid = u.uid;
  if (u.gid !== undefined) o.gid = u.gid;
  if (u.readahead !== undefined) o.readahead = u.readahead;
  if (u.rsize !== undefined) o.rsize = u.rsize;
  if (u.wsize !== undefined) o.wsize = u.wsize;
  if (u.soft !== undefined) o.soft = u.soft;
  if (u.timeoMs !== undefined) o.timeoutMs = u.timeoMs;
  if (u.acregmin !== undefined) o.acregmin = u.acregmin;
  if (u.acregmax !== undefined) o.acregmax = u.acregmax;
  if (u.acdirmin !== undefined) o.acdirmin = u.acdirmin;
  if (u.acdirmax !== undefined) o.acdirmax = u.acdirmax;
  if (u.lookupCache !== undefined) o.lookupCache = u.lookupCache;
  if (u.localio !== undefined) o.localio = u.localio;
  if (u.localioRead !== undefined) o.localioRead = u.localioRead;
  if (u.localioWrite !== undefined) o.localioWrite = u.localioWrite;
  return o;
}

function checkMode(v: CacheMode | undefined, name: string): CacheMode | undefined {
  return v === undefined ? undefined : parseCacheMode(v, name);
}

/**
 * Mount an export and return a client for it.
 *
 *   await connect('nfs://server/export/dir?version=3&nfsport=2049&mountport=20048&uid=1000&gid=1000')
 *   await connect({ host: 'server', path: '/export/dir', soft: true, timeoutMs: 10_000 })
 *
 * `overrides` are applied over what the URL says.
 */
export async function connect(target: string | ConnectOptions, overrides: Partial<ConnectOptions> = {}): Promise<NfsClient> {
  const o: ConnectOptions = { ...(typeof target === 'string' ? optionsFromUrl(parseNfsUrl(target)) : target), ...overrides };
  const mountTimeoutMs = o.mountTimeoutMs ?? 30_000;
  const soft = o.soft === true;
  const timeoutMs = soft ? o.timeoutMs || 30_000 : 0;
  const path = o.path ?? '/';
  const localioRead = checkMode(o.localioRead, 'localioRead');
  const localioWrite = checkMode(o.localioWrite, 'localioWrite');

  const nfsPort = o.nfsPort ?? (await getPort(o.host, NFS_V3_TABLE.prog, NFS_V3_TABLE.vers, o.portmapPort, mountTimeoutMs));
  const mountPort = o.mountPort ?? (await getPort(o.host, MOUNT_V3_TABLE.prog, MOUNT_V3_TABLE.vers, o.portmapPort, mountTimeoutMs));
  const cred = authSys(processCredentials({ uid: o.uid, gid: o.gid, gids: o.gids, machineName: o.machineName }));
  const rsizeGuess = Math.max(o.rsize ?? 0, o.wsize ?? 0, 1 << 20);
  const settings = { host: o.host, cred, reservedPort: o.reservedPort, maxRecord: Math.max(4 << 20, rsizeGuess + (256 << 10)), logger: o.logger };

  let mountRpc: RpcClient | undefined;
  let nfsRpc: RpcClient | undefined;
  try {
    mountRpc = await openRpc({ ...settings, timeoutMs: soft ? timeoutMs : mountTimeoutMs }, mountPort, MOUNT_V3_TABLE.prog, MOUNT_V3_TABLE.vers);
    const mount = new ProgramClient(mountRpc, MOUNT_V3_TABLE);
    const mounted = await mountPath(mount, path);

    nfsRpc = await openRpc({ ...settings, timeoutMs }, nfsPort, NFS_V3_TABLE.prog, NFS_V3_TABLE.vers);
    const nfs = new ProgramClient(nfsRpc, NFS_V3_TABLE, {
      retryLater: (res) => (res as { status?: number } | undefined)?.status === nfsstat3.NFS3ERR_JUKEBOX,
      retryForMs: timeoutMs,
    });
    const first = { timeoutMs: soft ? timeoutMs : mountTimeoutMs };

    // Down the rest of the path, from the exported directory.
    let fh: nfs_fh3 = { data: mounted.fh };
    let attrs: fattr3 | undefined;
    for (const name of mounted.rest) {
      const res = await nfs.call('LOOKUP', { what: { dir: fh, name } }, first);
      if (res.status !== 0) throw new NfsStatusError(res.status, 'LOOKUP');
      fh = { data: Buffer.from(res.resok.object.data) };
      attrs = res.resok.obj_attributes;
    }
    const fsinfo = await nfs.call('FSINFO', { fsroot: fh }, first);
    if (fsinfo.status !== 0) throw new NfsStatusError(fsinfo.status, 'FSINFO');
    if (!attrs) {
      const ga = await nfs.call('GETATTR', { object: fh }, first);
      if (ga.status !== 0) throw new NfsStatusError(ga.status, 'GETATTR');
      attrs = ga.resok.obj_attributes;
    }
    if (attrs.type !== 2) throw codeError('ENOTDIR', 'mount', path);
    const mountedPath = ['', ...pathComponents(mounted.exportPath), ...mounted.rest].join('/') || '/';
    const client = new NfsClient(
      { host: o.host, nfsPort, mountPort, exportPath: mounted.exportPath, path: mountedPath, root: fh, rootAttrs: attrs, fsinfo: fsinfo.resok, nfsRpc, mountRpc, nfs, mount, soft },
      o,
    );
    // LOCALIO probes in the background: the mount does not wait for it.
    const lio = new LocalioClient({
      rpc: nfsRpc,
      fallback: client.rpcTransport,
      ids: cred,
      enabled: o.localio !== false,
      registry: o.localioRegistry,
      logger: o.logger,
      readMode: localioRead,
      writeMode: localioWrite,
      bufferPoolBytes: o.localioBufferPool,
      maxIoBytes: Math.max(client.rsize, client.wsize),
      dirty: client.accountant,
    });
    client.attachLocalio(lio);
    lio.start();
    return client;
  } catch (err) {
    nfsRpc?.close();
    mountRpc?.close();
    throw toNfsError(err, 'mount', path);
  }
}
