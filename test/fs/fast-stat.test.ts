import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fstatFile, lstatFile, nativeStat, tryLstatFile, type FileStat } from '../../src/fs/fast-stat.js';
import { nativeStatus } from '../../src/native/index.js';

const FIELDS = ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blksize', 'blocks', 'atimeNs', 'mtimeNs', 'ctimeNs', 'birthtimeNs'] as const;

/** Every field the backends read, and the type tests, as Node's BigIntStats has them. */
function assertSameStat(ours: FileStat, node: fs.BigIntStats, what: string): void {
  for (const f of FIELDS) assert.equal(ours[f], node[f], `${what}: ${f}`);
  assert.equal(ours.isFile(), node.isFile(), `${what}: isFile`);
  assert.equal(ours.isDirectory(), node.isDirectory(), `${what}: isDirectory`);
  assert.equal(ours.isSymbolicLink(), node.isSymbolicLink(), `${what}: isSymbolicLink`);
}

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-fast-stat-'));
    try {
      await fn(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('the addon answers where it is built', () => {
  assert.equal(nativeStat, nativeStatus().available && process.env.TSNFS_NO_NATIVE !== '1');
});

test(
  'lstat and fstat give what Node gives, for each kind of object',
  withDir(async (dir) => {
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, Buffer.alloc(12345, 1));
    fs.utimesSync(file, new Date(1_600_000_000_123), new Date(1_700_000_000_456));
    fs.linkSync(file, path.join(dir, 'second-name'));
    fs.symlinkSync('file', path.join(dir, 'link'));
    fs.mkdirSync(path.join(dir, 'sub'));
    const sock = path.join(dir, 'sock');
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(sock, resolve));
    try {
      for (const name of ['file', 'link', 'sub', 'sock', '.', '/dev/null']) {
        const p = name.startsWith('/') ? name : path.join(dir, name);
        assertSameStat(lstatFile(p), fs.lstatSync(p, { bigint: true }), name);
        assertSameStat(tryLstatFile(p)!, fs.lstatSync(p, { bigint: true }), `${name} (try)`);
      }
      assert.equal(lstatFile(file).nlink, 2n);
      assert.equal(lstatFile(path.join(dir, 'link')).isSymbolicLink(), true, 'a symbolic link is not followed');
      const fd = fs.openSync(file, 'r');
      try {
        assertSameStat(fstatFile(fd), fs.fstatSync(fd, { bigint: true }), 'fstat');
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  }),
);

test(
  'a name that is not UTF-8 is looked up by its bytes',
  withDir((dir) => {
    const name = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x66, 0xff, 0xfe])]);
    fs.writeFileSync(name, 'x');
    assertSameStat(lstatFile(name), fs.lstatSync(name, { bigint: true }), 'latin-1 name');
    assert.equal(tryLstatFile(Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x66, 0xff])])), undefined);
  }),
);

test(
  'missing names: tryLstat answers undefined, lstat throws as Node does',
  withDir((dir) => {
    const missing = path.join(dir, 'missing');
    fs.writeFileSync(path.join(dir, 'file'), '');
    assert.equal(tryLstatFile(missing), undefined);
    assert.equal(tryLstatFile(path.join(dir, 'file', 'below')), undefined, 'ENOTDIR is nothing there too');
    assert.throws(() => lstatFile(missing), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ENOENT');
      assert.equal(err.errno, -2);
      assert.equal(err.syscall, 'lstat');
      assert.equal(err.path, missing);
      return true;
    });
    assert.throws(() => fstatFile(2_000_000), { code: 'EBADF' });
  }),
);

test(
  'a NUL byte in a path is refused, never cut short',
  withDir((dir) => {
    fs.writeFileSync(path.join(dir, 'a'), '');
    for (const p of [path.join(dir, 'a\0b'), Buffer.from(path.join(dir, 'a\0b'))]) {
      assert.throws(() => lstatFile(p));
      assert.throws(() => tryLstatFile(p));
    }
  }),
);
