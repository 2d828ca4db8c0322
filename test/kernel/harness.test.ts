// Fast checks of the kernel-client harness itself (no qemu needed).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findCloudKernel, isStaticElf, writeNewc } from './initramfs.js';
import { parseConsole } from './run.js';

test('parseConsole reads steps and the verdict among kernel noise', () => {
  const text = [
    'SeaBIOS (version 1.16.2)',
    'Booting from ROM..\x1bc\x1b[?7l\x1b[2J',
    '[    1.848176] Run /init as init process',
    'STEP modules ok 16 modules (0.6s)\r',
    'STEP mount ok nfs rw,vers=3 (0.1s)',
    'STEP write FAIL dd: /mnt/x/big.bin: No space left on device (0.4s)',
    'STEP df ok',
    'TSNFS-KERNEL-RESULT FAIL 4 steps',
    '[   19.974623] reboot: Power down',
  ].join('\n');
  const { steps, verdict } = parseConsole(text);
  assert.equal(verdict, 'FAIL');
  assert.deepEqual(steps, [
    { name: 'modules', ok: true, detail: '16 modules (0.6s)' },
    { name: 'mount', ok: true, detail: 'nfs rw,vers=3 (0.1s)' },
    { name: 'write', ok: false, detail: 'dd: /mnt/x/big.bin: No space left on device (0.4s)' },
    { name: 'df', ok: true, detail: '' },
  ]);
});

test('parseConsole flags step lines it could not read', () => {
  const { steps, verdict } = parseConsole('STEP a ok\nST[  3.1] noise\nEP b ok\nTSNFS-KERNEL-RESULT PASS 2 steps\n');
  assert.equal(verdict, 'PASS');
  assert.equal(steps.length, 2);
  assert.equal(steps[1]!.name, 'console');
  assert.equal(steps[1]!.ok, false);
});

test('parseConsole without a verdict', () => {
  assert.deepEqual(parseConsole('STEP a ok\n'), { steps: [{ name: 'a', ok: true, detail: '' }], verdict: null });
});

test('writeNewc writes a newc archive with padding and a trailer', () => {
  const buf = writeNewc([
    { name: 'dir', mode: 0o040755 },
    { name: 'dir/file', mode: 0o100644, data: Buffer.from('hello') },
    { name: 'dev/console', mode: 0o020600, rdevMajor: 5, rdevMinor: 1 },
  ]);
  const seen: { name: string; mode: number; data: string; rdev: [number, number] }[] = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0);
    const h = buf.subarray(off, off + 110).toString('ascii');
    assert.equal(h.slice(0, 6), '070701');
    const field = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const name = buf.subarray(off + 110, off + 110 + nameSize - 1).toString('utf8');
    assert.equal(buf[off + 110 + nameSize - 1], 0);
    off += 110 + nameSize;
    off += (4 - (off % 4)) % 4;
    const data = buf.subarray(off, off + size).toString('utf8');
    off += size;
    off += (4 - (off % 4)) % 4;
    if (name === 'TRAILER!!!') break;
    seen.push({ name, mode, data, rdev: [field(9), field(10)] });
  }
  assert.equal(off, buf.length);
  assert.deepEqual(seen, [
    { name: 'dir', mode: 0o040755, data: '', rdev: [0, 0] },
    { name: 'dir/file', mode: 0o100644, data: 'hello', rdev: [0, 0] },
    { name: 'dev/console', mode: 0o020600, data: '', rdev: [5, 1] },
  ]);
});

test('findCloudKernel picks the newest cloud kernel that has modules', () => {
  const root = mkdtempSync(join(tmpdir(), 'tsnfs-kernel-find-'));
  try {
    const boot = join(root, 'boot');
    const mods = join(root, 'modules');
    mkdirSync(boot);
    for (const v of ['6.1.0-9-cloud-amd64', '6.1.0-28-cloud-amd64', '6.1.0-40-cloud-amd64', '6.1.0-50-amd64']) {
      writeFileSync(join(boot, `vmlinuz-${v}`), '');
    }
    for (const v of ['6.1.0-9-cloud-amd64', '6.1.0-28-cloud-amd64', '6.1.0-50-amd64']) {
      mkdirSync(join(mods, v), { recursive: true });
      writeFileSync(join(mods, v, 'modules.dep'), '');
    }
    const k = findCloudKernel(boot, mods);
    assert.equal(k?.version, '6.1.0-28-cloud-amd64');
    assert.equal(k?.vmlinuz, join(boot, 'vmlinuz-6.1.0-28-cloud-amd64'));
    assert.equal(findCloudKernel(join(root, 'nothing'), mods), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('isStaticElf tells a dynamically linked executable', () => {
  assert.equal(isStaticElf(process.execPath), false);
  assert.equal(isStaticElf('/nonexistent'), false);
});
