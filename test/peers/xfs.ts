// A small XFS file system in an image file on a loop device, for tests that
// need a real disk file system: near full (ENOSPC), crashed (xfs_io
// shutdown: the log is not flushed, so what was not synced is lost, as in a
// power cut), or written faster than the device takes it.
//
//   const xfs = await mountXfs();          // skip first with noXfs()
//   try { ... xfs.dir ... } finally { await xfs.cleanup(); }
//
// cleanup() unmounts (lazily as a last resort) and removes the image and the
// mount point; an 'exit' hook does the same for a test that never got there.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeRun, run } from './proc.js';
import { firstReason, missing, notRoot } from './tools.js';

/** Why an XFS image cannot be mounted here (a skip reason), or false. */
export function noXfs(): false | string {
  return firstReason(
    notRoot('needs root to mount a loop device'),
    missing('mkfs.xfs', 'xfs_io', 'losetup'),
    fs.existsSync('/dev/loop-control') ? false : 'no loop devices (/dev/loop-control missing)',
    fs.readFileSync('/proc/filesystems', 'utf8').includes('xfs') || canLoadXfs() ? false : 'the kernel has no XFS',
  );
}

function canLoadXfs(): boolean {
  try {
    execFileSync('modprobe', ['-q', 'xfs'], { stdio: 'ignore' });
    return fs.readFileSync('/proc/filesystems', 'utf8').includes('xfs');
  } catch {
    return false;
  }
}

export interface XfsImage {
  /** The mount point (mode 0777). */
  readonly dir: string;
  /** The image file behind the loop device. */
  readonly image: string;
  /** Bytes an unprivileged writer may still allocate (statfs f_bavail). */
  freeBytes(): number;
  /**
   * freeBytes() once it stops changing (300 ms alike, at most 10 s): space
   * of deleted files comes back in the background (XFS inode GC, a server
   * closing what it held open).
   */
  settledFreeBytes(): Promise<number>;
  /** A crash: the file system stops at once, without flushing its log (xfs_io -x -c shutdown). */
  shutdown(): Promise<void>;
  /** Unmount and mount again (after a shutdown: log recovery, as after a reboot). Nothing may hold files open. */
  remount(): Promise<void>;
  cleanup(): Promise<void>;
}

const mounted = new Set<string>();
let exitHooked = false;

function unmountNow(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}

async function must(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(describeRun(r));
}

/** Unmounts `dir`, waiting a little (5 s) for files still being closed; then lazily, or throws. */
async function unmount(dir: string, lazyAtLast: boolean): Promise<void> {
  let last = '';
  for (let i = 0; i < 50; i++) {
    const r = await run('umount', [dir], { timeoutMs: 60_000 });
    if (r.code === 0 || !isMountPoint(dir)) return;
    last = describeRun(r);
    await sleep(100);
  }
  if (!lazyAtLast) throw new Error(last);
  unmountNow(dir);
}

function isMountPoint(dir: string): boolean {
  const want = fs.realpathSync(dir);
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === want);
}

/** A fresh XFS of `sizeMiB` (at least 300: mkfs.xfs's minimum) mounted on a new temp dir. */
export async function mountXfs(o: { sizeMiB?: number; prefix?: string } = {}): Promise<XfsImage> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), o.prefix ?? 'tsnfs-xfs-'));
  fs.chmodSync(root, 0o755);
  const image = path.join(root, 'xfs.img');
  const dir = path.join(root, 'mnt');
  fs.mkdirSync(dir);
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => {
      for (const m of mounted) unmountNow(m);
    });
  }
  const doMount = async (): Promise<void> => {
    await must('mount', ['-o', 'loop', image, dir]);
    mounted.add(dir);
  };
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      if (isMountPoint(dir)) await unmount(dir, true);
      mounted.delete(dir);
      fs.rmSync(root, { recursive: true, force: true });
    })());
  try {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, Math.max(300, o.sizeMiB ?? 300) * 1024 * 1024);
    await must('mkfs.xfs', ['-q', image]);
    await doMount();
    fs.chmodSync(dir, 0o777);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const freeBytes = (): number => {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  };
  return {
    dir,
    image,
    freeBytes,
    async settledFreeBytes() {
      let last = freeBytes();
      for (let stable = 0, i = 0; stable < 6 && i < 200; i++) {
        await sleep(50);
        const now = freeBytes();
        stable = now === last ? stable + 1 : 0;
        last = now;
      }
      return last;
    },
    async shutdown() {
      await must('xfs_io', ['-x', '-c', 'shutdown', dir]);
    },
    async remount() {
      await unmount(dir, false);
      mounted.delete(dir);
      await doMount();
    },
    cleanup,
  };
}
