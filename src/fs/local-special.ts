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
export function runMknod(
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
 * Create a Unix socket inode at `dir/name`. Long directory paths are bound
 * through /proc/self/fd/N/ (sun_path holds only 107 bytes).
 */
export async function makeSocket(dir: string, name: string, procFd: boolean): Promise<void> {
  const tmpName = `.tsnfs-sock-${crypto.randomBytes(6).toString('hex')}`;
  let dirFh: fs.FileHandle | undefined;
  let bindPath = path.join(dir, tmpName);
  try {
    if (Buffer.byteLength(bindPath) > SUN_PATH_MAX) {
      if (!procFd) throw fsError('ENOTSUPP', 'socket path too long');
      dirFh = await fs.open(dir, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
      bindPath = `/proc/self/fd/${dirFh.fd}/${tmpName}`;
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bindPath, () => resolve());
    });
    try {
      await fs.link(path.join(dir, tmpName), path.join(dir, name));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.unlink(path.join(dir, tmpName)).catch(() => undefined);
    }
  } finally {
    await dirFh?.close();
  }
}
