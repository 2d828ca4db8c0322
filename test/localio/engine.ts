// What the LOCALIO IO engine tests (engine-*.test.ts) share: the cache modes
// they run in, a time limit for every operation (nothing may hang), and a
// deterministic byte pattern that a writer in another process and the
// checker here both compute.

import { after, before } from 'node:test';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountXfsOrWhyNot, type XfsImage } from '../peers/xfs.js';
import { makeDirs, startServerChild, type Dirs, type ServerChild } from './helpers.js';
import type { CacheMode, ConnectOptions, LocalioClientStats } from '../../src/client/index.js';

export type EngineMode = 'default' | CacheMode;

/**
 * The modes each engine test runs in: the client's default first (no option
 * given: buffered both ways), then dontcache and direct, both directions.
 */
export const CACHE_MODES: readonly EngineMode[] = ['default', 'dontcache', 'direct'];

/** connect() options for a mode, both directions. */
export function modeOptions(mode: EngineMode): Pick<ConnectOptions, 'localioRead' | 'localioWrite'> {
  return mode === 'default' ? {} : { localioRead: mode, localioWrite: mode };
}

/**
 * Bytes the LOCALIO engine wrote in `mode` (direct: whole or split around a
 * direct middle), from a client's stats().localio.io: proof that a test ran
 * in the mode it names.
 */
export function bytesWrittenIn(io: LocalioClientStats['io'], mode: EngineMode): number {
  if (mode === 'direct') return io.direct.writeBytes + io.split.writeBytes;
  return mode === 'dontcache' ? io.dontcache.writeBytes : io.buffered.writeBytes;
}

export function bytesReadIn(io: LocalioClientStats['io'], mode: EngineMode): number {
  if (mode === 'direct') return io.direct.readBytes;
  return mode === 'dontcache' ? io.dontcache.readBytes : io.buffered.readBytes;
}

/** `p`, or a rejection naming `what` once `ms` have passed without an answer. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  const ac = new AbortController();
  const timeout = sleep(ms, undefined, { signal: ac.signal }).then(
    () => {
      throw new Error(`${what}: no answer within ${ms} ms`);
    },
    () => undefined as never,
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    ac.abort();
  }
}

/** The p-th percentile (0..100) of samples. */
export function percentile(samples: readonly number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Peak and current resident memory of a process, in bytes (/proc/<pid>/status). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

// ---------------------------------------------------------------- pattern

const PATTERN_SLACK = 4096;

/** Random-looking bytes from a seed (xorshift32): the same on both sides. */
export function patternBase(seed: number, chunk: number): Buffer {
  const b = Buffer.allocUnsafe(chunk + PATTERN_SLACK);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

/**
 * The bytes of pass `pass` at file offset `pos` (`out.length` of them): a
 * window of `base` that depends on both, stamped with them, so a chunk
 * written at the wrong place or left from another pass does not compare equal.
 */
export function patternChunk(base: Buffer, pass: number, pos: number, out: Buffer): Buffer {
  const shift = (pass * 7919 + Math.floor(pos / 512) * 104729) % PATTERN_SLACK;
  base.copy(out, 0, shift, shift + out.length);
  if (out.length >= 12) {
    out.writeUInt32LE(pass, 0);
    out.writeDoubleLE(pos, 4);
  }
  return out;
}

/** A fresh XFS image on a loop device, exported by `tsnfs serve` in a child process. */
export interface XfsExport {
  readonly d: Dirs;
  /** undefined when the image could not be mounted; `skipReason` says why. */
  readonly xfs: XfsImage | undefined;
  readonly skipReason: string | undefined;
  /** The server, while one runs. */
  readonly srv: ServerChild | undefined;
  /** Starts the server (with `serve: false`, or again after stopServer). */
  serve(): Promise<ServerChild>;
  stopServer(): Promise<void>;
}

/**
 * Registers before/after hooks in the calling describe() that make the image
 * and (unless `serve` is false) start the server; everything is stopped,
 * unmounted and removed afterwards.
 */
export function xfsExport(prefix: string, opts: { serve?: boolean } = {}): XfsExport {
  let d: Dirs | undefined;
  let xfs: XfsImage | undefined;
  let skipReason: string | undefined;
  let srv: ServerChild | undefined;
  const fx: XfsExport = {
    get d() {
      return d!;
    },
    get xfs() {
      return xfs;
    },
    get skipReason() {
      return skipReason;
    },
    get srv() {
      return srv;
    },
    async serve() {
      srv = await startServerChild(d!, { registry: d!.registry, exportsText: `${xfs!.dir} *(rw,no_root_squash,insecure)\n` });
      return srv;
    },
    async stopServer() {
      const s = srv;
      srv = undefined;
      await s?.stop();
    },
  };
  before(async () => {
    d = makeDirs(`${prefix}-`);
    const m = await mountXfsOrWhyNot({ prefix: `${prefix}-xfs-` });
    if (typeof m === 'string') {
      skipReason = m;
      return;
    }
    xfs = m;
    if (opts.serve !== false) await fx.serve();
  });
  after(async () => {
    await fx.stopServer();
    await xfs?.cleanup();
    d?.cleanup();
  });
  return fx;
}
