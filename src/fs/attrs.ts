// Attribute helpers shared by the backends: time conversions, mode bits,
// and the pieces of weak cache consistency data.

import type { FileStat } from './fast-stat.js';
import { FileType, type Attrs, type Time, type Wcc } from './backend.js';

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;

const NS = 1_000_000_000n;

export function nsToTime(ns: bigint): Time {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function timeToNs(t: Time): bigint {
  return BigInt(t.sec) * NS + BigInt(t.nsec);
}

export function sameTime(a: Time, b: Time): boolean {
  return a.sec === b.sec && a.nsec === b.nsec;
}

export function validTime(t: Time): boolean {
  return Number.isSafeInteger(t.sec) && Number.isInteger(t.nsec) && t.nsec >= 0 && t.nsec < 1e9;
}

const TYPE_BY_FMT = new Map<number, FileType>([
  [0o100000, FileType.REG],
  [0o040000, FileType.DIR],
  [0o060000, FileType.BLK],
  [0o020000, FileType.CHR],
  [0o120000, FileType.LNK],
  [0o140000, FileType.SOCK],
  [0o010000, FileType.FIFO],
]);

export function typeOfMode(mode: number): FileType {
  const t = TYPE_BY_FMT.get(mode & 0o170000);
  if (t === undefined) throw new Error(`unknown file type in mode ${mode.toString(8)}`);
  return t;
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major & 0xffffffffn), minor: Number(minor & 0xffffffffn) };
}

export function statToAttrs(st: FileStat): Attrs {
  const mode = Number(st.mode);
  return {
    type: typeOfMode(mode),
    mode: mode & 0o7777,
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: st.size,
    used: st.blocks * 512n,
    rdev: splitDev(st.rdev),
    fsid: st.dev,
    fileid: st.ino === 0n ? 0xffff_ffff_ffff_ffffn : st.ino,
    atime: nsToTime(st.atimeNs),
    mtime: nsToTime(st.mtimeNs),
    ctime: nsToTime(st.ctimeNs),
  };
}

export function wccBefore(a: Attrs): NonNullable<Wcc['before']> {
  return { size: a.size, mtime: a.mtime, ctime: a.ctime };
}

/** Bytes as an NFS reply pads them: rounded up to 4. */
export function xdrPad(n: number): number {
  return (n + 3) & ~3;
}
