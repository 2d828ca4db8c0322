// LOCALIO: a client on the same host as its server reads, writes and
// commits through descriptors of the server's own files, skipping RPC and
// XDR; metadata stays on RPC.
//
// Co-location is proven, never assumed from addresses or host names:
//
//   client                                   server
//   nonce = random UUID
//   listen <registry>/<uuid>.sock
//   UUID_IS_LOCAL(uuid)  ---- NFS conn --->  <registry>/<uuid>.sock there?
//                        <--- unix sock ---  connect, HELLO(nonce, instance, verifier)
//                        <--- NFS conn ----  reply (void)
//   a connection whose HELLO has the nonce: local; the socket file goes
//
// then, on that channel:
//   OPEN(fh, rw?, uid, gid, gids)  --->      export rules of the NFS connection,
//                                            SO_PEERCRED, squashing, backend.open
//                                  <---      GRANT + descriptor, or REFUSE(nfsstat3)
//                                  <---      REVOKE(grants)   (unexport)
//   REVOKED / CLOSE(grants)        --->
//
// A client and a server in one process meet through the in-process
// registry instead, and the grants are the server's backend itself.
//
//   registry.ts  the registry directory and the in-process registry
//   channel.x    the channel's messages (channel.gen.ts is generated)
//   server.ts    program 400122 and the grants (LocalioServer)
//   client.ts    probes, sessions, grants, LocalioTransport (LocalioClient)
//   io.ts        the IO seam on granted descriptors (IoEngine or node:fs)
//   engine.ts    cache modes per direction (buffered, dontcache, direct), counters
//   align.ts     direct-IO planning: widened reads, split writes
//   buffer-pool.ts  reserved aligned bounce buffers

import { statSync } from 'node:fs';
import { fdPassingAvailable, nativeStatus } from '../native/index.js';
import { defaultRegistryDir, prepareRegistryDir, REGISTRY_ENV } from './registry.js';

export { LocalioClient, LocalioTransport, localIoError, type LocalioClientOptions, type LocalioClientStats, type LocalioIoStats, type LocalioState } from './client.js';
export { LocalioServer, GrantRevokedError, type EmbeddedFile, type EmbeddedOpen, type EmbeddedSession, type LocalioServerCounters, type LocalioServerOptions, type LocalioServerStats } from './server.js';
export { EngineIo, FsIo, setSharedLocalIo, sharedLocalIo, type LocalIo, type SyncKind } from './io.js';
export {
  CACHE_MODES,
  DEFAULT_READ_MODE,
  DEFAULT_WRITE_MODE,
  LocalioEngine,
  isCacheMode,
  parseCacheMode,
  type CacheMode,
  type EngineFallbacks,
  type LocalioEngineOptions,
  type LocalioEngineStats,
  type ModeCounters,
} from './engine.js';
export { AlignedBufferPool, type BufferPoolStats } from './buffer-pool.js';
export { planDirectRead, planDirectWrite, type ReadStep, type WritePart } from './align.js';
export { defaultRegistryDir, prepareRegistryDir, randomUuid, REGISTRY_ENV, socketPathFor, uuidString, type RegistryCheck } from './registry.js';

/** What this process can do with LOCALIO, for `tsnfs doctor`. */
export interface LocalioStatus {
  /** Descriptor passing: needed for clients and servers in separate processes. */
  fdPassing: boolean;
  reason?: string;
  registry: string;
  /** Whether the registry directory exists (it is made on the first probe). */
  registryExists: boolean;
  /** Why the registry cannot be used, when it exists and cannot. */
  registryProblem?: string;
}

export function localioStatus(): LocalioStatus {
  const registry = defaultRegistryDir();
  const st = nativeStatus();
  const out: LocalioStatus = { fdPassing: fdPassingAvailable(), registry, registryExists: isDir(registry) };
  if (!st.available) out.reason = st.reason ?? 'native addon unavailable';
  if (out.registryExists) {
    const check = prepareRegistryDir(registry);
    if (!check.ok) out.registryProblem = check.reason;
  }
  return out;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** One line for `tsnfs doctor`: whether LOCALIO works here, and the registry. */
export function localioDoctorLine(): string {
  const s = localioStatus();
  const where = `registry ${s.registry}${s.registryExists ? '' : ' (made on first use)'}${s.registryProblem ? ` - unusable: ${s.registryProblem}` : ''}`;
  if (s.fdPassing) return `localio: available; ${where} (${REGISTRY_ENV} sets it)`;
  return `localio: in-process only, clients in other processes use RPC (${s.reason ?? 'no descriptor passing'}); ${where}`;
}
