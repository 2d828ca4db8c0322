// lstat and fstat through the native addon, without Node's BigIntStats.
//
// lstatSync(p, { bigint: true }) spends about as long building its result
// (18 BigInts, four BigInt divisions, four Dates) as the system call takes.
// The server calls it several times per metadata operation, so where the
// addon is built these read the kernel's answer from one shared array and
// make a FileStat: the fields the backend reads, times in nanoseconds made
// only when asked for. `npm run bench:backend` (CREATE, GETATTR, LOOKUP and
// REMOVE through the local backend, nine lstats and fstats a round): 7% less
// CPU per round. Without the addon (or with TSNFS_NO_NATIVE=1), Node's calls
// answer, with the same values.

import { fstatSync, lstatSync, type BigIntStats } from 'node:fs';
import { native } from '../native/index.js';
import { sysError } from '../native/errors.js';

/** The part of BigIntStats the backends use; Node's BigIntStats is one. */
export type FileStat = Pick<
  BigIntStats,
  'dev' | 'ino' | 'mode' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'blksize' | 'blocks' | 'atimeNs' | 'mtimeNs' | 'ctimeNs' | 'birthtimeNs'
> & {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
};

const S_IFMT = 0o170000n;
const NS = 1_000_000_000n;
const ENOENT = -2;
const ENOTDIR = -20;

class NativeStat implements FileStat {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly blksize: bigint;
  readonly blocks: bigint;
  // Seconds and nanoseconds of each time; the sum is made when asked for.
  private readonly as: bigint;
  private readonly an: bigint;
  private readonly ms: bigint;
  private readonly mn: bigint;
  private readonly cs: bigint;
  private readonly cn: bigint;
  private readonly bs: bigint;
  private readonly bn: bigint;

  constructor(s: BigInt64Array) {
    this.dev = s[0]!;
    this.ino = s[1]!;
    this.mode = s[2]!;
    this.nlink = s[3]!;
    this.uid = s[4]!;
    this.gid = s[5]!;
    this.rdev = s[6]!;
    this.size = s[7]!;
    this.blksize = s[8]!;
    this.blocks = s[9]!;
    this.as = s[10]!;
    this.an = s[11]!;
    this.ms = s[12]!;
    this.mn = s[13]!;
    this.cs = s[14]!;
    this.cn = s[15]!;
    this.bs = s[16]!;
    this.bn = s[17]!;
  }

  get atimeNs(): bigint {
    return this.as * NS + this.an;
  }

  get mtimeNs(): bigint {
    return this.ms * NS + this.mn;
  }

  get ctimeNs(): bigint {
    return this.cs * NS + this.cn;
  }

  get birthtimeNs(): bigint {
    return this.bs * NS + this.bn;
  }

  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000n;
  }

  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000n;
  }

  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000n;
  }
}

const slots = new BigInt64Array(18);
const fast = native?.statBuffer && native.lstatInto && native.fstatInto ? native : undefined;
fast?.statBuffer!(slots);

/** Whether the addon answers (else Node's lstatSync and fstatSync do). */
export const nativeStat = fast !== undefined;

/** lstat(2); throws as lstatSync does. */
export function lstatFile(p: string | Buffer): FileStat {
  if (!fast) return lstatSync(p, { bigint: true });
  const rc = fast.lstatInto!(p);
  if (rc < 0) throw pathError(rc, 'lstat', p);
  return new NativeStat(slots);
}

/** lstat(2), or undefined where nothing is (ENOENT, ENOTDIR). */
export function tryLstatFile(p: string | Buffer): FileStat | undefined {
  if (!fast) {
    try {
      return lstatSync(p, { bigint: true, throwIfNoEntry: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  }
  const rc = fast.lstatInto!(p);
  if (rc === ENOENT || rc === ENOTDIR) return undefined;
  if (rc < 0) throw pathError(rc, 'lstat', p);
  return new NativeStat(slots);
}

/** fstat(2); throws as fstatSync does. */
export function fstatFile(fd: number): FileStat {
  if (!fast) return fstatSync(fd, { bigint: true });
  const rc = fast.fstatInto!(fd);
  if (rc < 0) throw sysError(rc, 'fstat');
  return new NativeStat(slots);
}

function pathError(rc: number, syscall: string, p: string | Buffer): NodeJS.ErrnoException {
  const shown = typeof p === 'string' ? p : p.toString('latin1');
  const err = sysError(rc, syscall, `'${shown}'`);
  err.path = shown;
  return err;
}
