// Where co-located clients and servers meet: the registry directory, and an
// in-process registry for clients and servers that share one process.
//
// The registry directory is the host-shared memory of the handshake (see
// src/localio/index.ts). Its path:
//
//   TSNFS_LOCALIO_REGISTRY            when set (clients and servers alike)
//   /run/tsnfs/localio                as root
//   $XDG_RUNTIME_DIR/tsnfs/localio    otherwise
//   <tmpdir>/tsnfs-<uid>/localio      otherwise, without XDG_RUNTIME_DIR
//
// A client and a server find each other only when they use the same
// directory; containers share it by mounting it, as they would a CSI socket.
//
// Who can use it: the client binds its socket there, the server connects to
// it. Binding needs write and search permission on the directory, connecting
// needs search permission on the directory and write permission on the
// socket. Root passes every check, so a root server reaches any client's
// socket, and a client of any uid may use its own 0700 directory with a root
// server (both default to /run/tsnfs/localio as root; a client running as a
// user names the server's directory with TSNFS_LOCALIO_REGISTRY, or the
// server names the client's). A server and a client running as two
// different users that are not root need a directory both may use: mode
// 0770 (or 2770), owned by a group both belong to; the client then makes its
// socket 0660. A directory open to others (any of the mode bits 0007) is
// refused: whoever can list it sees the nonces.
//
// The in-process registry holds the probes under way of this process, by
// nonce, so that a server living in the same process answers them directly
// (embedded mode, no descriptors). It is kept on globalThis under a
// registered symbol, so that two copies of this module loaded in one
// process still meet.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REGISTRY_ENV = 'TSNFS_LOCALIO_REGISTRY';

/** The registry directory this process uses unless told otherwise. */
export function defaultRegistryDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[REGISTRY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  const uid = process.geteuid?.() ?? process.getuid?.();
  if (uid === 0) return '/run/tsnfs/localio';
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg !== '' && path.isAbsolute(xdg)) return path.join(xdg, 'tsnfs', 'localio');
  return path.join(os.tmpdir(), `tsnfs-${uid ?? 'user'}`, 'localio');
}

/** RFC 9562 text form of 16 bytes: 8-4-4-4-12 lower-case hex digits. */
export function uuidString(b: Buffer): string {
  if (b.length !== 16) throw new RangeError(`a UUID has 16 bytes, got ${b.length}`);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A random (version 4) UUID as 16 bytes. */
export function randomUuid(): Buffer {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // variant 10
  return b;
}

/** `<dir>/<uuid>.sock`: where the client with this nonce listens. */
export function socketPathFor(dir: string, nonce: Buffer): string {
  return path.join(dir, `${uuidString(nonce)}.sock`);
}

/** Longest socket path the kernel accepts (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

/** Result of preparing the registry directory on the client side. */
export type RegistryCheck = { ok: true; dir: string; socketMode: number } | { ok: false; dir: string; reason: string };

/**
 * Makes the registry directory when missing (mode 0700, parents as needed)
 * and checks it: a directory, not open to others, short enough a path for
 * socket names. Says which mode the client's sockets get (0600, or 0660 in a
 * group-shared directory).
 */
export function prepareRegistryDir(dir: string): RegistryCheck {
  const abs = path.resolve(dir);
  if (Buffer.byteLength(abs) + 42 > MAX_SOCKET_PATH) return { ok: false, dir: abs, reason: `registry path too long for socket names (${Buffer.byteLength(abs)} bytes; at most ${MAX_SOCKET_PATH - 42})` };
  try {
    fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
  } catch (err) {
    return { ok: false, dir: abs, reason: `cannot create it: ${(err as Error).message}` };
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (err) {
    return { ok: false, dir: abs, reason: (err as Error).message };
  }
  if (!st.isDirectory()) return { ok: false, dir: abs, reason: 'not a directory' };
  if ((st.mode & 0o007) !== 0) return { ok: false, dir: abs, reason: `open to other users (mode ${(st.mode & 0o7777).toString(8)}); use 0700, or 0770 with a shared group` };
  return { ok: true, dir: abs, socketMode: (st.mode & 0o070) !== 0 ? 0o660 : 0o600 };
}

/** Socket files older than this are left-overs of clients that died mid-probe. */
const STALE_MS = 60 * 60 * 1000;
let lastSweep = 0;

/**
 * Removes stale `*.sock` files (older than an hour) from the registry, at
 * most once every ten minutes per process. Files of other users that cannot
 * be removed are left alone.
 */
export function sweepStaleSockets(dir: string, now = Date.now()): number {
  if (now - lastSweep < 10 * 60 * 1000) return 0;
  lastSweep = now;
  let removed = 0;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!/^[0-9a-f-]{36}\.sock$/.test(name)) continue;
    const p = path.join(dir, name);
    try {
      const st = fs.lstatSync(p);
      if (st.isSocket() && now - st.mtimeMs > STALE_MS) {
        fs.unlinkSync(p);
        removed++;
      }
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return removed;
}

// ---------------------------------------------------------------- in-process

/** A probe of a client in this process, waiting for a server to answer it. */
export interface InProcessProbe<S = unknown> {
  /** A server in this process got UUID_IS_LOCAL with this nonce: here is its session. */
  offer(session: S): void;
}

interface InProcessRegistry {
  readonly version: 1;
  readonly probes: Map<string, InProcessProbe>;
}

const KEY = Symbol.for('tsnfs.localio.inProcessRegistry');

function inProcess(): InProcessRegistry {
  const g = globalThis as unknown as Record<symbol, InProcessRegistry | undefined>;
  let r = g[KEY];
  if (!r || r.version !== 1) {
    r = { version: 1, probes: new Map() };
    g[KEY] = r;
  }
  return r;
}

/** Registers a probe under way; returns the function that removes it. */
export function registerInProcess<S>(nonce: Buffer, probe: InProcessProbe<S>): () => void {
  const key = nonce.toString('hex');
  const probes = inProcess().probes;
  probes.set(key, probe as InProcessProbe);
  return () => {
    if (probes.get(key) === probe) probes.delete(key);
  };
}

/** The probe of this process with this nonce, taken out of the registry (single use). */
export function takeInProcess<S>(nonce: Buffer): InProcessProbe<S> | undefined {
  const key = nonce.toString('hex');
  const probes = inProcess().probes;
  const p = probes.get(key);
  if (p) probes.delete(key);
  return p as InProcessProbe<S> | undefined;
}
