// The MetaWorker: a create or remove runs only where its directory is still
// the one the caller checked, reports the stats a server answers with, and
// closes descriptors. (Without the addon MetaWorker.start() is undefined:
// fallback-child.ts.)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MetaWorker, native, nativeStatus, type MetaResult, type MetaStats } from '../../src/native/index.js';

const skip = native ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;
const CREATE = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR | fs.constants.O_NOFOLLOW;

function ok(r: MetaResult): Extract<MetaResult, { ok: true }> {
  if (!r.ok) assert.fail(`job failed at ${r.stage}: ${r.code}`);
  return r;
}

function sameStat(got: MetaStats, want: fs.BigIntStats): void {
  for (const k of ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs', 'birthtimeNs'] as const) {
    assert.equal(got[k], want[k], k);
  }
  assert.equal(got.isDirectory(), want.isDirectory());
  assert.equal(got.isFile(), want.isFile());
}

describe('MetaWorker', { skip }, () => {
  let base: string;
  let w: MetaWorker;
  before(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-meta-'));
    w = MetaWorker.start({ depth: 4 })!;
  });
  after(async () => {
    await w.stop();
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('create: the file exists with its mode, and the stats are what lstat and fstat say', async () => {
    const dir = fs.mkdtempSync(path.join(base, 'c-'));
    const expect = fs.lstatSync(dir, { bigint: true });
    const target = path.join(dir, 'f');
    const r = ok(await w.create(dir, target, CREATE, 0o600, expect));
    try {
      const onDisk = fs.lstatSync(target, { bigint: true });
      sameStat(r.object, fs.fstatSync(r.fd, { bigint: true }));
      assert.equal(r.object.ino, onDisk.ino);
      assert.equal(Number(onDisk.mode & 0o777n), 0o600);
      sameStat(r.before, expect);
      sameStat(r.after!, fs.lstatSync(dir, { bigint: true }));
      // The descriptor is the file's, open for writing.
      fs.writeSync(r.fd, 'x');
      assert.equal(fs.readFileSync(target, 'utf8'), 'x');
    } finally {
      fs.closeSync(r.fd);
    }
    // O_EXCL: a second create of the name fails and changes nothing.
    const again = await w.create(dir, target, CREATE, 0o600, fs.lstatSync(dir, { bigint: true }));
    assert.deepEqual(again, { ok: false, stage: 'op', errno: -17, code: 'EEXIST' });
  });

  test('create: nothing is made where the path no longer reaches the directory checked', async () => {
    const dir = fs.mkdtempSync(path.join(base, 'm-'));
    const elsewhere = fs.mkdtempSync(path.join(base, 'x-'));
    const expect = fs.lstatSync(dir, { bigint: true });
    // Its permission bits changed since the caller checked them.
    fs.chmodSync(dir, 0o755);
    assert.deepEqual(await w.create(dir, path.join(dir, 'a'), CREATE, 0o644, expect), { ok: false, stage: 'dir', errno: -116, code: 'ESTALE' });
    const changed = fs.lstatSync(dir, { bigint: true });
    // Replaced by a symlink to another directory.
    fs.renameSync(dir, `${dir}.moved`);
    fs.symlinkSync(elsewhere, dir);
    assert.deepEqual(await w.create(dir, path.join(dir, 'a'), CREATE, 0o644, changed), { ok: false, stage: 'dir', errno: -116, code: 'ESTALE' });
    // Gone.
    fs.unlinkSync(dir);
    assert.deepEqual(await w.create(dir, path.join(dir, 'a'), CREATE, 0o644, changed), { ok: false, stage: 'dir', errno: -2, code: 'ENOENT' });
    assert.deepEqual(fs.readdirSync(elsewhere), []);
    assert.deepEqual(fs.readdirSync(`${dir}.moved`), []);
  });

  test('remove: unlinks a name, reports it as it was, and refuses directories', async () => {
    const dir = fs.mkdtempSync(path.join(base, 'r-'));
    const target = path.join(dir, 'f');
    fs.writeFileSync(target, 'abc');
    const victim = fs.lstatSync(target, { bigint: true });
    const expect = fs.lstatSync(dir, { bigint: true });
    const r = ok(await w.remove(dir, target, expect));
    assert.equal(fs.existsSync(target), false);
    sameStat(r.object, victim);
    sameStat(r.before, expect);
    sameStat(r.after!, fs.lstatSync(dir, { bigint: true }));
    assert.deepEqual(await w.remove(dir, target, r.after!), { ok: false, stage: 'name', errno: -2, code: 'ENOENT' });
    fs.mkdirSync(path.join(dir, 'sub'));
    const now = fs.lstatSync(dir, { bigint: true });
    assert.deepEqual(await w.remove(dir, path.join(dir, 'sub'), now), { ok: false, stage: 'name', errno: -21, code: 'EISDIR' });
    assert.ok(fs.statSync(path.join(dir, 'sub')).isDirectory());
    // A symlink is removed itself, never what it points at.
    fs.symlinkSync(target + '-x', path.join(dir, 'l'));
    fs.writeFileSync(target + '-x', '');
    ok(await w.remove(dir, path.join(dir, 'l'), fs.lstatSync(dir, { bigint: true })));
    assert.ok(fs.existsSync(target + '-x'));
  });

  test('close, and more jobs than slots at once', async () => {
    const dir = fs.mkdtempSync(path.join(base, 'n-'));
    const fd = fs.openSync(path.join(dir, 'c'), 'w');
    await w.close(fd);
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' });
    const expect = () => fs.lstatSync(dir, { bigint: true });
    const e = expect();
    // Creates in a directory change its mtime and ctime, not what the check compares.
    const made = await Promise.all(Array.from({ length: 40 }, (_, i) => w.create(dir, path.join(dir, `f${i}`), CREATE, 0o644, e)));
    await Promise.all(made.map((r) => w.close(ok(r).fd)));
    assert.equal(fs.readdirSync(dir).length, 41);
    const gone = await Promise.all(Array.from({ length: 40 }, (_, i) => w.remove(dir, path.join(dir, `f${i}`), e)));
    gone.forEach(ok);
    assert.deepEqual(fs.readdirSync(dir), ['c']);
  });
});
