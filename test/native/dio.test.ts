// Direct-IO facts and memory: statx STATX_DIOALIGN on the file systems at
// hand (the temp directory's, tmpfs, loop-mounted XFS), O_DIRECT on open
// descriptors, and aligned buffers.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  allocAligned,
  bufferAddress,
  isAligned,
  isODirect,
  native,
  nativeStatus,
  openODirect,
  setODirect,
  statxDioAlign,
  type DioAlign,
} from '../../src/native/index.js';
import { mountXfs, type ScratchMount } from './scratch-fs.js';

const skip = native ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;

const FS_NAMES: Record<number, string> = { 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs' };
const STATX_DIO_READ_ALIGN = 0x20000;

function fsName(dir: string): string {
  const type = fs.statfsSync(dir).type;
  return FS_NAMES[type] ?? `0x${type.toString(16)}`;
}

function isPow2OrZero(n: number): boolean {
  return n >= 0 && (n & (n - 1)) === 0;
}

/** statx of a fresh file in `dir` (written, so it has blocks). */
function alignOfNewFile(dir: string, name = 'statx-probe'): { align: DioAlign; mask: number } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.alloc(65536, 1));
  const fd = fs.openSync(file, 'r');
  try {
    const raw = native!.statxDioAlign(fd);
    assert.notEqual(typeof raw, 'number');
    return { align: statxDioAlign(fd), mask: (raw as { mask: number }).mask };
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
}

function checkShape(a: DioAlign): void {
  for (const v of [a.memAlign, a.offsetAlign, a.readOffsetAlign]) assert.ok(isPow2OrZero(v), `power of two or zero: ${v}`);
  const zeros = a.memAlign === 0 && a.offsetAlign === 0 && a.readOffsetAlign === 0;
  const all = a.memAlign > 0 && a.offsetAlign > 0 && a.readOffsetAlign > 0;
  assert.ok(zeros || all, 'all zero (no direct IO) or all set');
  assert.ok(a.readOffsetAlign <= a.offsetAlign, 'reads are never coarser than writes');
}

describe('statx STATX_DIOALIGN', { skip }, () => {
  test('on the temp directory', (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-statx-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const { align, mask } = alignOfNewFile(dir);
    const name = fsName(dir);
    t.diagnostic(`${name}: ${JSON.stringify(align)} stx_mask=0x${mask.toString(16)}`);
    checkShape(align);
    if (name === 'ext4' || name === 'xfs') assert.ok(align.offsetAlign > 0, `${name} supports direct IO`);
    if (name === 'tmpfs') assert.equal(align.offsetAlign, 0);
  });

  test('on tmpfs (/dev/shm): zeros, so callers use buffered IO', (t) => {
    if (!fs.existsSync('/dev/shm') || fsName('/dev/shm') !== 'tmpfs') {
      t.skip('/dev/shm is not a tmpfs here');
      return;
    }
    const dir = fs.mkdtempSync('/dev/shm/tsnfs-statx-');
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const { align, mask } = alignOfNewFile(dir);
    t.diagnostic(`tmpfs: ${JSON.stringify(align)} stx_mask=0x${mask.toString(16)}`);
    assert.deepEqual(align, { memAlign: 0, offsetAlign: 0, readOffsetAlign: 0 });
  });

  test('on a bad descriptor: EBADF', () => {
    assert.throws(() => statxDioAlign(1_000_000), { code: 'EBADF', syscall: 'statx' });
  });
});

describe('statx on loop-mounted XFS', { skip }, () => {
  let xfs512: ScratchMount | string;
  let xfs4k: ScratchMount | string;

  before(async () => {
    xfs512 = await mountXfs({ sectorSize: 512 });
    xfs4k = typeof xfs512 === 'string' ? xfs512 : await mountXfs({ sectorSize: 4096 });
  });

  after(async () => {
    if (typeof xfs512 !== 'string') await xfs512.cleanup();
    if (typeof xfs4k !== 'string') await xfs4k.cleanup();
  });

  test('512-byte sectors: a plain file aligns to 512', (t) => {
    if (typeof xfs512 === 'string') return t.skip(xfs512);
    const { align, mask } = alignOfNewFile(xfs512.dir);
    t.diagnostic(`xfs, 512-byte sectors: ${JSON.stringify(align)} stx_mask=0x${mask.toString(16)}`);
    checkShape(align);
    assert.equal(align.offsetAlign, 512);
    assert.equal(align.readOffsetAlign, 512);
    assert.ok(align.memAlign > 0);
  });

  test('512-byte sectors: a reflinked (copy-on-write) file writes at 4096, reads at 512', (t) => {
    if (typeof xfs512 === 'string') return t.skip(xfs512);
    const a = path.join(xfs512.dir, 'orig');
    const b = path.join(xfs512.dir, 'clone');
    fs.writeFileSync(a, Buffer.alloc(256 * 1024, 7));
    try {
      fs.copyFileSync(a, b, fs.constants.COPYFILE_FICLONE_FORCE);
    } catch (err) {
      return t.skip(`no reflink on this XFS: ${(err as Error).message}`);
    }
    const fd = fs.openSync(b, 'r');
    const raw = native!.statxDioAlign(fd) as { mask: number };
    const align = statxDioAlign(fd);
    fs.closeSync(fd);
    t.diagnostic(`xfs, reflinked file: ${JSON.stringify(align)} stx_mask=0x${raw.mask.toString(16)}`);
    checkShape(align);
    assert.equal(align.offsetAlign, 4096, 'copy-on-write writes need whole file-system blocks');
    if (raw.mask & STATX_DIO_READ_ALIGN) assert.equal(align.readOffsetAlign, 512, 'STATX_DIO_READ_ALIGN: reads stay at the sector size');
    else assert.equal(align.readOffsetAlign, align.offsetAlign, 'without STATX_DIO_READ_ALIGN, reads use the write alignment');
  });

  test('4096-byte sectors: everything aligns to 4096', (t) => {
    if (typeof xfs4k === 'string') return t.skip(xfs4k);
    const { align, mask } = alignOfNewFile(xfs4k.dir);
    t.diagnostic(`xfs, 4096-byte sectors: ${JSON.stringify(align)} stx_mask=0x${mask.toString(16)}`);
    checkShape(align);
    assert.equal(align.offsetAlign, 4096);
    assert.equal(align.readOffsetAlign, 4096);
  });

  test('O_DIRECT: openODirect, setODirect and isODirect agree', (t) => {
    if (typeof xfs512 === 'string') return t.skip(xfs512);
    const file = path.join(xfs512.dir, 'direct');
    const fd = openODirect(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      assert.equal(isODirect(fd), true);
      assert.equal(setODirect(fd, false), true);
      assert.equal(isODirect(fd), false);
      assert.equal(setODirect(fd, true), true);
      assert.equal(isODirect(fd), true);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('O_DIRECT on the temp directory and on tmpfs', { skip }, () => {
  test('setODirect follows what statx says', (t) => {
    for (const base of [os.tmpdir(), '/dev/shm']) {
      if (!fs.existsSync(base)) continue;
      const dir = fs.mkdtempSync(path.join(base, 'tsnfs-odirect-'));
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, 'x');
      const fd = fs.openSync(file, 'r+');
      let outcome: string;
      try {
        outcome = setODirect(fd, true) ? `O_DIRECT on (isODirect=${String(isODirect(fd))})` : 'not applied';
      } catch (err) {
        outcome = (err as NodeJS.ErrnoException).code ?? 'error';
      }
      const align = statxDioAlign(fd);
      fs.closeSync(fd);
      t.diagnostic(`${fsName(dir)}: setODirect -> ${outcome}; statx ${JSON.stringify(align)}`);
      if (align.offsetAlign > 0) assert.match(outcome, /^O_DIRECT on \(isODirect=true\)/);
    }
  });
});

describe('allocAligned', () => {
  test('the buffer starts at the asked alignment, is zeroed and sized', { skip }, () => {
    for (const [size, align] of [
      [4096, 4096],
      [1 << 20, 4096],
      [100, 512],
      [0, 64],
      [3, 1],
      [2 << 20, 2 << 20],
    ] as const) {
      const b = allocAligned(size, align);
      assert.ok(Buffer.isBuffer(b));
      assert.equal(b.length, size);
      assert.equal(isAligned(b, align), true, `${size}@${align}: address 0x${bufferAddress(b)!.toString(16)}`);
      assert.ok(b.every((x) => x === 0));
      b.fill(0xab); // writable end to end
    }
  });

  test('rejects an alignment that is not a power of two', () => {
    assert.throws(() => allocAligned(4096, 3000), RangeError);
    assert.throws(() => allocAligned(-1, 4096), RangeError);
  });

  test('memory is returned when buffers are collected', { skip }, async () => {
    // 2 GiB through 1 MiB buffers: without the finalizer (or without telling
    // V8 about the external memory) the process would keep it all.
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 2048; i++) {
      const b = allocAligned(1 << 20, 4096);
      b[0] = 1;
      if (i % 256 === 0) await new Promise((r) => setImmediate(r)); // let finalizers run
    }
    const grown = process.memoryUsage().rss - rss0;
    assert.ok(grown < 1024 * 1024 * 1024, `RSS grew by ${Math.round(grown / 1048576)} MiB`);
  });
});
