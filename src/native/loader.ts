// Finds and loads the optional C addon (src/native/build/Release/
// tsnfs_native.node), built by scripts/build-native.mjs during install.
//
// The addon is optional: when it was not built, fails to load, is a stale
// build, or TSNFS_NO_NATIVE=1 is set, `native` is undefined and every
// wrapper in this folder takes its pure-TypeScript fallback (or reports the
// feature unavailable, for descriptor passing). `nativeStatus()` says which
// and why, for `tsnfs doctor`.
//
// The .node file is looked up from the package root, found by walking up
// from this module to the package.json named "tsnfs", so the same code works
// from src/ (ts-node style) and from dist/src/ (compiled).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's interface version; must match TSNFS_NATIVE_ABI in common.h. */
export const NATIVE_ABI = 1;

/** What recvMsg answers for one record. `bytes === 0` is end-of-file. */
export interface RawRecv {
  bytes: number;
  nfds: number;
  truncated: boolean;
  fdsTruncated: boolean;
}

export interface RawStatx {
  /** stx_mask as the kernel answered it. */
  mask: number;
  memAlign: number;
  offsetAlign: number;
  readOffsetAlign: number;
}

export interface RawPeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface RawPoller {
  /** 1 readable, 2 writable, 3 both; 0 stops. Answers 0 or a negative errno. */
  start(events: number): number;
  stop(): void;
  setRef(on: boolean): void;
  close(): void;
}

export interface RawEngineStats {
  submitted: number;
  completed: number;
  inFlight: number;
  queued: number;
  running: number;
  maxInFlight: number;
  maxQueued: number;
  batches: number;
  wakeups: number;
  threads: number;
  ioFlusherThreads: number;
  ioFlusherErrno: number;
  /** O_DIRECT reads started with Linux AIO, and of those, handed to a worker (EAGAIN). */
  aioReads?: number;
  aioPunted?: number;
}

/** An opaque engine handle (a type-tagged N-API external). */
export type RawEngineHandle = object & { readonly __tsnfsEngine?: never };

/**
 * The addon's raw surface. System call failures come back as negative errno
 * numbers, never as exceptions; the wrappers in this folder turn them into
 * Node-style errors. Use those wrappers rather than this directly.
 */
export interface NativeAddon {
  readonly abi: number;

  unixListen(path: string, backlog: number): number;
  unixConnect(path: string): number;
  unixAccept(fd: number): number;
  sendMsg(fd: number, data: Uint8Array, fds?: readonly number[]): number;
  recvMsg(fd: number, data: Uint8Array, fds: Int32Array): RawRecv | number;
  peerCred(fd: number): RawPeerCred | number;
  closeFd(fd: number): number;
  readonly maxFdsPerMessage: number;

  readonly Poller: new (fd: number, callback: (status: number, events: number) => void) => RawPoller;
  readonly POLL_READABLE: number;
  readonly POLL_WRITABLE: number;

  statxDioAlign(fd: number): RawStatx | number;
  setODirect(fd: number, on: boolean): number;
  getFdFlags(fd: number): number;
  allocAligned(size: number, align: number): Uint8Array;
  addressOf(view: ArrayBufferView): bigint;
  /** posix_fadvise DONTNEED: 0 or a negative errno (absent in builds before it). */
  dropCache?(fd: number, offset: number, length: number): number;
  readonly O_DIRECT: number;

  /** Where lstatInto and fstatInto write their 18 slots (absent in builds before them). */
  statBuffer?(slots: BigInt64Array): void;
  lstatInto?(path: string | Buffer): number;
  fstatInto?(fd: number): number;

  engineCreate(
    threads: number,
    queueDepth: number,
    onBatch: (count: number) => void,
    maxThreads?: number,
  ): { handle: RawEngineHandle; results: Int32Array; threads: number };
  engineSubmit(
    handle: RawEngineHandle,
    slot: number,
    op: number,
    fd: number,
    buffer: Uint8Array | null,
    bufOffset: number,
    length: number,
    position: number,
    rwf: number,
    kick: boolean,
  ): number;
  /** One write gathering `buffers` (absent in builds before it). */
  engineSubmitv?(handle: RawEngineHandle, slot: number, fd: number, buffers: readonly Uint8Array[], position: number, rwf: number, kick: boolean): number;
  engineKick(handle: RawEngineHandle): void;
  engineStats(handle: RawEngineHandle): RawEngineStats;
  engineClose(handle: RawEngineHandle): void;
  /** preadv2(RWF_NOWAIT) on the calling thread: bytes or a negative errno (absent in builds before it). */
  readNowait?(fd: number, buffer: Uint8Array, bufOffset: number, length: number, position: number): number;
  /** readNowait without the O_DIRECT check (F_GETFL), for descriptors known to be buffered. */
  readNowaitBuffered?(fd: number, buffer: Uint8Array, bufOffset: number, length: number, position: number): number;
  readonly RWF: { HIPRI: number; DSYNC: number; SYNC: number; NOWAIT: number; DONTCACHE: number };
  readonly maxIoBytes: number;
}

export interface NativeStatus {
  /** The addon is loaded and in use. */
  available: boolean;
  /** Why not, when it is not. */
  reason?: string;
  /** The .node file loaded, or the one that was looked for. */
  path?: string;
}

const ADDON_FILE = 'tsnfs_native.node';

/** The package root: the nearest directory up with a package.json named tsnfs. */
function packageRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'tsnfs') return dir;
      } catch {
        // unreadable package.json: keep walking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

function disabledByEnv(): boolean {
  const v = process.env['TSNFS_NO_NATIVE'];
  return v !== undefined && v !== '' && v !== '0';
}

function load(): { addon?: NativeAddon; status: NativeStatus } {
  if (disabledByEnv()) return { status: { available: false, reason: 'disabled by TSNFS_NO_NATIVE=1' } };
  if (process.platform !== 'linux') return { status: { available: false, reason: `not supported on ${process.platform}` } };
  const root = packageRoot();
  if (root === undefined) return { status: { available: false, reason: 'package root not found' } };
  const candidates = ['Release', 'Debug'].map((c) => path.join(root, 'src', 'native', 'build', c, ADDON_FILE));
  const file = candidates.find((c) => existsSync(c));
  if (file === undefined) {
    return { status: { available: false, reason: 'not built (run: node scripts/build-native.mjs)', path: candidates[0] } };
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { status: { available: false, reason: `failed to load: ${msg}`, path: file } };
  }
  if (addon.abi !== NATIVE_ABI) {
    return {
      status: {
        available: false,
        reason: `stale build (interface ${String(addon.abi)}, expected ${NATIVE_ABI}; rebuild with node scripts/build-native.mjs)`,
        path: file,
      },
    };
  }
  return { addon, status: { available: true, path: file } };
}

const loaded = load();

/** The loaded addon, or undefined when the fallbacks are in use. */
export const native: NativeAddon | undefined = loaded.addon;

/** Whether the addon is in use, and why not. */
export function nativeStatus(): NativeStatus {
  return { ...loaded.status };
}
