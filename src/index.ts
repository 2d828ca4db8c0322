// The tsnfs package: an NFSv3 server to embed (startServer, with a real
// directory or a Backend of your own), an NFSv3 client (connect), and the
// layers beneath them for those who need protocol-level access.

export { startServer, defaultPorts, version } from './server/index.js';
export type { ServeOptions, RunningServer } from './server/index.js';
export * from './client/index.js';
export type { CacheMode } from './localio/index.js';
export { LocalBackend, MemoryBackend, FsError, Access, toFsError } from './fs/index.js';
export type { Backend, Attrs, SetAttrs, Cred, LocalBackendOptions, MemoryBackendOptions } from './fs/index.js';
/** Storage-side names that the client also uses (FileType, StableHow) live in the `fs` namespace. */
export * as fs from './fs/index.js';
export * as rpc from './rpc/index.js';
export * as xdr from './xdr/index.js';
export * as proto from './proto/index.js';
export { createLogger } from './log.js';
