// Making FIFOs, sockets and device nodes from Node, which has no mknod():
// FIFOs and devices through mknod(1) (coreutils), sockets by binding a Unix
// socket and hard-linking it to the wanted name (libuv unlinks the bound path
// when the listener closes, so the link is what remains).

import fs from 'node:fs/promises';
import { constants as C } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { fsError } from './errors.js';
import { hostPath } from './names.js';
import { hasEscapedBytes } from '../xdr/bytes-string.js';

const SUN_PATH_MAX = 107;

/** The mknod(1) executable on PATH, if any. */
export async function findMknod(): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, 'mknod');
    try {
      await fs.access(p, C.X_OK);
      return p;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/** mknod(1) with mode 0600; the caller sets ownership and mode afterwards. */
function runMknod(
  helper: string | undefined,
  target: string,
  kind: 'p' | 'b' | 'c',
  rdev: { major: number; minor: number },
): Promise<void> {
  if (!helper) return Promise.reject(fsError('ENOTSUPP', 'no mknod helper'));
  const args = ['-m', '600', '--', target, kind];
  if (kind !== 'p') args.push(String(rdev.major), String(rdev.minor));
  return new Promise((resolve, reject) => {
    execFile(helper, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(fsError('ENOTSUPP', 'no mknod helper'));
      reject(fsError(codeFromMessage(String(stderr)), String(stderr).trim()));
    });
  });
}

function codeFromMessage(msg: string): string {
  if (/File exists/i.test(msg)) return 'EEXIST';
  if (/Operation not permitted/i.test(msg)) return 'EPERM';
  if (/Permission denied/i.test(msg)) return 'EACCES';
  if (/No space/i.test(msg)) return 'ENOSPC';
  if (/quota/i.test(msg)) return 'EDQUOT';
  if (/Read-only/i.test(msg)) return 'EROFS';
  if (/No such file/i.test(msg)) return 'ENOENT';
  if (/too long/i.test(msg)) return 'ENAMETOOLONG';
  return 'EIO';
}

/**
 * Make a node at `dir/name` when the tool making it takes the path only as
 * a UTF-8 string (mknod(1)'s arguments, a socket's address) but the path
 * has bytes that are not UTF-8 or is too long: `make` makes it under a
 * temporary name reached through /proc/PID/fd/N of the directory (a child
 * process of ours can reach that too) and calls `link` while the node is
 * there, which hard-links it to its name (never over an existing one:
 * EEXIST); the temporary name is then removed.
 */
async function makeViaTemp(dir: string, name: string, make: (tmpPath: string, link: () => Promise<void>) => Promise<void>): Promise<void> {
  const tmpName = `.tsnfs-node-${crypto.randomBytes(6).toString('hex')}`;
  const dirFh = await fs.open(hostPath(dir), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
  const tmp = hostPath(path.join(dir, tmpName));
  try {
    await make(`/proc/${process.pid}/fd/${dirFh.fd}/${tmpName}`, () => fs.link(tmp, hostPath(path.join(dir, name))));
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
    await dirFh.close();
  }
}

/** Whether `dir/name` must be made through makeViaTemp. */
function needsTemp(dir: string, name: string, maxBytes = Infinity): boolean {
  return hasEscapedBytes(dir) || hasEscapedBytes(name) || Buffer.byteLength(path.join(dir, name)) > maxBytes;
}

/** mknod(1) of `dir/name`, a name of any bytes. */
export function makeNode(helper: string | undefined, dir: string, name: string, kind: 'p' | 'b' | 'c', rdev: { major: number; minor: number }): Promise<void> {
  if (!needsTemp(dir, name)) return runMknod(helper, path.join(dir, name), kind, rdev);
  return makeViaTemp(dir, name, async (p, link) => {
    await runMknod(helper, p, kind, rdev);
    await link();
  });
}

/** Bind a Unix socket listener to `p`, run `keep` while it exists, close it (libuv then unlinks `p`). */
async function bindSocket(p: string, keep: () => Promise<void>): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve());
  });
  try {
    await keep();
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Create a Unix socket inode at `dir/name`. Long paths (sun_path holds
 * only 107 bytes) and names that are not UTF-8 are bound through
 * /proc/PID/fd/N/.
 */
export async function makeSocket(dir: string, name: string, procFd: boolean): Promise<void> {
  const tmpName = `.tsnfs-sock-${crypto.randomBytes(6).toString('hex')}`;
  if (needsTemp(dir, tmpName, SUN_PATH_MAX) || hasEscapedBytes(name)) {
    if (!procFd) throw fsError('ENOTSUPP', 'socket path too long or not UTF-8');
    return makeViaTemp(dir, name, bindSocket);
  }
  const bindPath = path.join(dir, tmpName);
  try {
    await bindSocket(bindPath, () => fs.link(bindPath, path.join(dir, name)));
  } finally {
    await fs.unlink(bindPath).catch(() => undefined);
  }
}
