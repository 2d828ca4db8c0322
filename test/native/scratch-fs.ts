// Scratch file systems for the native tests: a loop-mounted XFS image (for
// direct IO with real alignment rules) and a tiny tmpfs (for ENOSPC). Both
// need root; each helper answers a skip reason instead when it cannot mount.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ScratchMount {
  /** The mounted directory. */
  dir: string;
  /** Unmounts and removes everything. */
  cleanup(): Promise<void>;
}

function findTool(name: string): string | undefined {
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', ...(process.env['PATH'] ?? '').split(':')]) {
    const p = path.join(d, name);
    if (d && fs.existsSync(p)) return p;
  }
  return undefined;
}

async function unmount(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      await run('umount', [dir]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // busy: a descriptor is closing
    }
  }
}

/**
 * A fresh XFS file system on a sparse image, loop-mounted. `sectorSize`
 * sets the loop device's logical block size (512 or 4096), which is what
 * direct IO must align to. Answers a string (a skip reason) when it cannot.
 */
export async function mountXfs(opts: { sizeMiB?: number; sectorSize?: 512 | 4096 } = {}): Promise<ScratchMount | string> {
  if (process.platform !== 'linux') return 'XFS test needs Linux';
  if (process.getuid?.() !== 0) return 'XFS test needs root (loop mount)';
  const mkfs = findTool('mkfs.xfs');
  if (!mkfs) return 'XFS test needs mkfs.xfs (xfsprogs)';
  const losetup = findTool('losetup');
  if (!losetup) return 'XFS test needs losetup';
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-xfs-'));
  const img = path.join(base, 'xfs.img');
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, (opts.sizeMiB ?? 300) * 1024 * 1024);
  let loop: string | undefined;
  try {
    loop = (await run(losetup, ['--find', '--show', '--sector-size', String(opts.sectorSize ?? 512), img])).stdout.trim();
    await run(mkfs, ['-q', '-f', loop]);
    await run('mount', [loop, dir]);
  } catch (err) {
    if (loop) await run(losetup, ['-d', loop]).catch(() => undefined);
    fs.rmSync(base, { recursive: true, force: true });
    const msg = ((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n')[0];
    return `cannot make a loop-mounted XFS here: ${msg}`;
  }
  return {
    dir,
    async cleanup() {
      await unmount(dir);
      await run(losetup, ['-d', loop]).catch(() => undefined);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

/** A tmpfs of `sizeKiB`, to run out of space on purpose. */
export async function mountTinyTmpfs(sizeKiB: number): Promise<ScratchMount | string> {
  if (process.platform !== 'linux') return 'tmpfs test needs Linux';
  if (process.getuid?.() !== 0) return 'tmpfs test needs root (mount)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-tiny-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tsnfs-tiny', dir]);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs here: ${((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n')[0]}`;
  }
  return {
    dir,
    async cleanup() {
      await unmount(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
