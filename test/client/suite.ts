// The client's API suite, run against a real server (nfs-ganesha, tsnfs's
// own) that exports a local directory, so every result can be checked
// against the directory itself.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { appendFile, chmod as localChmod, lstat as localLstat, mkdir as localMkdir, readFile as localReadFile, stat as localStat, symlink as localSymlink, writeFile as localWriteFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, NfsDirent, NfsError, type NfsClient } from '../../src/client/index.js';
import type { ConnectOptions } from '../../src/client/index.js';
import { fsx } from './fsx.js';
import { decodeBytes } from '../../src/xdr/index.js';

export interface Target {
  /** The local directory the server exports. */
  exportDir: string;
  /** The path to MNT. */
  exportPath: string;
  nfsPort: number;
  mountPort: number;
  /** fileid is the local inode number (true for ganesha's VFS backend). */
  fileidIsIno?: boolean;
}

const MiB = 1024 * 1024;

/** Node-style error with this code. */
function code(c: string, syscall?: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof NfsError, `expected NfsError, got ${String(e)}`);
    assert.equal(e.code, c, e.message);
    if (syscall) assert.equal(e.syscall, syscall);
    assert.ok(e.errno < 0);
    return true;
  };
}

/** A deterministic pseudo-random byte stream of `total` bytes, hashing what it emits. */
function generator(total: number, seed: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let left = total;
  let x = seed >>> 0 || 1;
  const stream = new Readable({
    read() {
      if (left === 0) return this.push(null);
      const n = Math.min(left, 256 * 1024 + (x % 4096)); // odd sizes: chunks straddle pages
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b.writeUInt32LE(x >>> 0, i);
      }
      b.fill(7, n - (n % 4));
      left -= n;
      hash.update(b);
      this.push(b);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

function hasher(): { t: Transform; digest: () => string; bytes: () => number } {
  const h = createHash('sha256');
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      h.update(chunk);
      bytes += chunk.length;
      cb();
    },
  });
  return { t, digest: () => h.digest('hex'), bytes: () => bytes };
}

export function apiSuite(name: string, target: () => Target): void {
  const clients: NfsClient[] = [];
  let n = 0;

  /** A fresh directory in the export and a client mounted on it (below the export: MNT then LOOKUP). */
  async function fresh(opts: Partial<ConnectOptions> = {}, params = ''): Promise<{ c: NfsClient; dir: string; url: string }> {
    const t = target();
    const sub = `t${process.pid}-${++n}`;
    const dir = join(t.exportDir, sub);
    await localMkdir(dir);
    const url = `nfs://127.0.0.1${t.exportPath}/${sub}?version=3&nfsport=${t.nfsPort}&mountport=${t.mountPort}${params ? '&' + params : ''}`;
    const c = await connect(url, opts);
    clients.push(c);
    return { c, dir, url };
  }

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
  });

  describe(`${name}: connecting and typed calls`, () => {
    test('mounts a directory below the export', async () => {
      const t = target();
      const { c, dir } = await fresh();
      // Some servers let MNT reach below an export; others need MNT of the export and LOOKUP of the rest.
      assert.ok(c.exportPath === t.exportPath || c.exportPath === c.mountedPath, c.exportPath);
      assert.ok(c.mountedPath.endsWith(dir.slice(dir.lastIndexOf('/'))), c.mountedPath);
      assert.ok(c.rsize >= 4096 && c.wsize >= 4096);
    });

    test('client.nfs.call and client.mount.call are typed by procedure name', async () => {
      const t = target();
      const { c } = await fresh();
      await c.nfs.call('NULL', undefined);
      const ga = await c.nfs.call('GETATTR', { object: c.root });
      assert.equal(ga.status, 0);
      if (ga.status === 0) assert.equal(ga.resok.obj_attributes.type, 2);
      const fi = await c.nfs.call('FSINFO', { fsroot: c.root });
      assert.equal(fi.status, 0);
      const ex = await c.mount.call('EXPORT', undefined);
      assert.ok(ex.some((e) => e.ex_dir === t.exportPath), JSON.stringify(ex));
      const mnt = await c.mount.call('MNT', t.exportPath);
      assert.equal(mnt.fhs_status, 0);
      const bad = await c.nfs.call('LOOKUP', { what: { dir: c.root, name: 'no-such-name' } });
      assert.equal(bad.status, 2);
      assert.ok(c.stats().nfsOps.LOOKUP! >= 1);
    });

    test('a path that does not exist cannot be mounted', async () => {
      const t = target();
      await assert.rejects(connect(`nfs://127.0.0.1${t.exportPath}/no/such/dir?nfsport=${t.nfsPort}&mountport=${t.mountPort}`), code('ENOENT', 'mount'));
    });
  });

  describe(`${name}: files`, () => {
    test('writeFile and readFile, checked in the export directory', async () => {
      const { c, dir } = await fresh();
      await c.writeFile('a.txt', 'hello world');
      assert.equal(await localReadFile(join(dir, 'a.txt'), 'utf8'), 'hello world');
      assert.equal(await c.readFile('a.txt', 'utf8'), 'hello world');
      const big = randomBytes(3 * MiB + 17);
      await c.writeFile('big.bin', big);
      assert.ok((await localReadFile(join(dir, 'big.bin'))).equals(big));
      assert.ok((await c.readFile('big.bin')).equals(big));
      await c.appendFile('a.txt', '!');
      assert.equal(await localReadFile(join(dir, 'a.txt'), 'utf8'), 'hello world!');
    });

    test('open flags: r, r+, w, wx, a, and read/write permissions of the handle', async () => {
      const { c, dir } = await fresh();
      await assert.rejects(c.open('missing', 'r'), code('ENOENT', 'open'));
      const h = await c.open('f', 'w', 0o640);
      await h.write(Buffer.from('0123456789'));
      await assert.rejects(h.read(Buffer.alloc(4), 0, 4, 0), code('EBADF', 'read'));
      await h.close();
      assert.equal((await localStat(join(dir, 'f'))).mode & 0o777, 0o640);
      await assert.rejects(c.open('f', 'wx'), code('EEXIST', 'open'));
      const r = await c.open('f', 'r');
      await assert.rejects(r.write(Buffer.from('x')), code('EBADF', 'write'));
      await r.close();
      const rw = await c.open('f', 'r+');
      await rw.write(Buffer.from('AB'), 0, 2, 3);
      const got = Buffer.alloc(10);
      const { bytesRead } = await rw.read(got, 0, 10, 0);
      assert.equal(got.subarray(0, bytesRead).toString(), '012AB56789');
      await rw.close();
      const a = await c.open('f', 'a');
      await a.write(Buffer.from('xyz'), 0, 3, 0); // position ignored: appends
      await a.close();
      assert.equal(await localReadFile(join(dir, 'f'), 'utf8'), '012AB56789xyz');
      const w = await c.open('f', 'w'); // truncates
      await w.close();
      assert.equal((await localStat(join(dir, 'f'))).size, 0);
      const x = await c.open('new', 'wx+');
      await x.close();
      await assert.rejects(c.open('.', 'r+'), code('EISDIR', 'open'));
    });

    test('file handle: positions, stat, truncate, sync', async () => {
      const { c, dir } = await fresh();
      const h = await c.open('p', 'w+');
      await h.write(Buffer.from('abc')); // position 0 -> 3
      await h.write(Buffer.from('def')); // 3 -> 6
      await h.write(Buffer.from('Z'), 0, 1, 10); // explicit: leaves a hole, position unchanged
      await h.write(Buffer.from('g')); // 6 -> 7
      let st = await h.stat();
      assert.equal(st.size, 11, 'the size includes data not yet written back');
      await h.sync();
      const local = await localReadFile(join(dir, 'p'));
      assert.deepEqual(local, Buffer.from('abcdefg\0\0\0Z'));
      const buf = Buffer.alloc(20);
      const r = await h.read(buf, 0, 20, 0);
      assert.equal(r.bytesRead, 11);
      assert.deepEqual(buf.subarray(0, 11), local);
      await h.truncate(4);
      st = await h.stat();
      assert.equal(st.size, 4);
      assert.equal(st.sizeBig, 4n);
      assert.equal((await localStat(join(dir, 'p'))).size, 4);
      await h.close();
      await h.close(); // twice is fine
      await assert.rejects(h.stat(), code('EBADF'));
    });

    test('stat and lstat: an fs.Stats-like object', async () => {
      const t = target();
      const { c, dir } = await fresh();
      await localWriteFile(join(dir, 'file'), Buffer.alloc(12345));
      await localMkdir(join(dir, 'sub'));
      await localSymlink('file', join(dir, 'link'));
      const st = await c.stat('file');
      const ls = await localStat(join(dir, 'file'));
      assert.ok(st.isFile() && !st.isDirectory() && !st.isSymbolicLink());
      assert.equal(st.size, 12345);
      assert.equal(st.sizeBig, 12345n);
      assert.equal(st.mode, ls.mode);
      assert.equal(st.nlink, ls.nlink);
      assert.equal(st.uid, ls.uid);
      assert.equal(st.gid, ls.gid);
      assert.ok(st.mtime instanceof Date);
      assert.equal(Math.floor(st.mtimeMs / 1000), Math.floor(ls.mtimeMs / 1000));
      assert.equal(st.ino, Number(st.fileid));
      if (t.fileidIsIno) assert.equal(st.ino, ls.ino);
      assert.ok((await c.stat('sub')).isDirectory());
      assert.equal((await c.stat('sub')).mode & 0o170000, 0o040000);
      assert.ok((await c.lstat('link')).isSymbolicLink());
      assert.ok((await c.stat('link')).isFile(), 'stat follows the link');
      assert.equal((await c.stat('link')).ino, st.ino);
      await assert.rejects(c.stat('nope'), code('ENOENT', 'stat'));
      await assert.rejects(c.stat('file/x'), code('ENOTDIR', 'stat'));
    });

    test('streams: 50 MiB written and read back with the same checksum', async () => {
      const { c, dir } = await fresh();
      const gen = generator(50 * MiB, 12345);
      const ws = c.createWriteStream('fifty.bin');
      await pipeline(gen.stream, ws);
      const written = gen.digest();
      assert.equal(ws.bytesWritten, 50 * MiB);
      const local = createHash('sha256').update(await localReadFile(join(dir, 'fifty.bin'))).digest('hex');
      assert.equal(local, written, 'the export directory holds exactly what was written');
      const h = hasher();
      await pipeline(c.createReadStream('fifty.bin'), h.t);
      assert.equal(h.bytes(), 50 * MiB);
      assert.equal(h.digest(), written);
      const st = c.stats();
      assert.ok(st.cache.read.readahead > 0, 'sequential reading read ahead');
      assert.ok(st.writes >= 50, `WRITEs: ${st.writes}`);
      // A slice, with start and end inclusive.
      const part = hasher();
      await pipeline(c.createReadStream('fifty.bin', { start: 1000, end: 1999 }), part.t);
      assert.equal(part.bytes(), 1000);
    });

    test('stream chunks stay intact while a handle reads the same file (its record buffers are reused)', async () => {
      // Over RPC (LOCALIO reads bypass the read cache).
      const { c, dir } = await fresh({}, 'localio=0');
      const size = 12 * c.rsize + 5;
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) data.writeUInt32BE(i, i);
      await localWriteFile(join(dir, 'views.bin'), data);
      // The stream's chunks are views of the read cache's buffers: all held
      // until the end, while a handle reads the file sequentially through
      // the same cache (copying out, and giving the buffers it may back).
      const chunks: Buffer[] = [];
      const streamed = (async () => {
        for await (const chunk of c.createReadStream('views.bin', { highWaterMark: c.rsize })) chunks.push(chunk as Buffer);
      })();
      const h = await c.open('views.bin');
      const buf = Buffer.alloc(c.rsize);
      let pos = 0;
      try {
        for (let n; (n = (await h.read(buf, 0, buf.length, null)).bytesRead) > 0; pos += n) {
          assert.ok(buf.subarray(0, n).equals(data.subarray(pos, pos + n)), `handle read at ${pos}`);
        }
      } finally {
        await h.close();
      }
      await streamed;
      assert.equal(pos, size);
      // Read again with the handle: reused buffers would now show these bytes in the held chunks.
      const again = await c.readFile('views.bin');
      assert.ok(again.equals(data));
      assert.ok(Buffer.concat(chunks).equals(data), 'every chunk handed out still holds its bytes');
    });

    test('readBorrowed: chunks without a copy; a chunk held keeps its bytes, released buffers serve later chunks', async () => {
      const { c, dir } = await fresh({}, 'localio=0');
      const size = 10 * c.rsize + 123;
      const data = randomBytes(size);
      await localWriteFile(join(dir, 'borrow.bin'), data);
      const h = await c.open('borrow.bin');
      try {
        // The first chunk is held to the end: its buffer must not serve another chunk meanwhile.
        const first = await h.readBorrowed(0, c.rsize);
        assert.ok(first.data.equals(data.subarray(0, c.rsize)));
        const backing = new Set<ArrayBufferLike>();
        let reused = 0;
        let pos = first.data.length;
        for (;;) {
          const { data: chunk, release } = await h.readBorrowed(pos, c.rsize);
          if (chunk.length === 0) {
            release();
            break;
          }
          assert.ok(chunk.equals(data.subarray(pos, pos + chunk.length)), `bytes at ${pos}`);
          assert.notEqual(chunk.buffer, first.data.buffer, 'a held chunk lends its buffer to nobody');
          if (backing.has(chunk.buffer)) reused++;
          backing.add(chunk.buffer);
          pos += chunk.length;
          release();
        }
        assert.equal(pos, size);
        assert.ok(first.data.equals(data.subarray(0, c.rsize)), 'the held chunk kept its bytes');
        first.release();
        assert.ok(reused > 0, 'buffers given back served later chunks');
      } finally {
        await h.close();
      }
    });

    test('many concurrent writes to different offsets', async () => {
      const { c, dir } = await fresh();
      const h = await c.open('conc', 'w');
      const piece = 100 * 1024 + 3;
      const count = 64;
      const expected = Buffer.alloc(piece * count);
      const order = [...Array(count).keys()].sort(() => Math.random() - 0.5);
      await Promise.all(
        order.map(async (i) => {
          const b = randomBytes(piece);
          b.copy(expected, i * piece);
          await h.write(b, 0, piece, i * piece);
        }),
      );
      await h.close();
      assert.ok((await localReadFile(join(dir, 'conc'))).equals(expected));
    });

    test('write-back: after sync() the export directory holds the bytes, before close', async () => {
      const { c, dir } = await fresh();
      const h = await c.open('wb', 'w');
      const data = randomBytes(2 * MiB + 777);
      for (let off = 0; off < data.length; off += 100_000) await h.write(data, off, Math.min(100_000, data.length - off), off);
      await h.sync();
      assert.ok((await localReadFile(join(dir, 'wb'))).equals(data), 'byte for byte');
      assert.equal(c.stats().writeback.dirtyBytes, 0);
      await h.close();
    });

    test('random operations against a model, checked in the export directory (fsx-style)', async () => {
      const { c, dir } = await fresh({ pageSize: 4096, wsize: 65536, dirty: { hard: 512 * 1024 }, writebackDelayMs: 0 });
      for (const seed of [11, 12]) {
        await fsx(c, `fsx${seed}`, { seed, ops: 200, committed: () => localReadFile(join(dir, `fsx${seed}`)) });
      }
      assert.ok(c.stats().writeback.peakDirtyBytes <= 512 * 1024);
    });

    test('reads: a random 4 KiB read is one 4 KiB READ; a sequential reader READs each chunk once', async () => {
      const { c, dir } = await fresh({ rsize: 64 * 1024, readahead: 256 * 1024, localio: false });
      const data = randomBytes(4 * MiB);
      await localWriteFile(join(dir, 'r.bin'), data);
      const h = await c.open('r.bin', 'r');
      const buf = Buffer.alloc(4096);
      const before = c.stats();
      for (const pos of [3 * MiB + 8192, 12288, 2 * MiB + 4096 * 7]) {
        assert.equal((await h.read(buf, 0, 4096, pos)).bytesRead, 4096);
        assert.ok(buf.equals(data.subarray(pos, pos + 4096)), `bytes at ${pos}`);
      }
      const random = c.stats();
      assert.equal(random.nfsOps.READ! - before.nfsOps.READ!, 3, `one READ per random read: ${JSON.stringify(random.cache.read)}`);
      assert.equal(random.bytesRead - before.bytesRead, 3 * 4096, 'no more than asked');
      // Sequential from the start (a new handle, which reads ahead from its first read), 100 000 bytes
      // at a time through the whole file: read-ahead, and no chunk fetched twice.
      await h.close();
      const h2 = await c.open('r.bin', 'r');
      const big = Buffer.alloc(100_000);
      const seen: Buffer[] = [];
      for (let pos = 0; ; ) {
        const { bytesRead } = await h2.read(big, 0, big.length, pos);
        if (bytesRead === 0) break;
        seen.push(Buffer.from(big.subarray(0, bytesRead)));
        pos += bytesRead;
      }
      assert.ok(Buffer.concat(seen).equals(data));
      const after = c.stats();
      assert.equal(after.bytesRead - random.bytesRead, data.length, `each byte READ once: ${after.bytesRead - random.bytesRead} bytes, ${after.nfsOps.READ! - random.nfsOps.READ!} READs, ${JSON.stringify(after.cache.read)}`);
      assert.ok(after.cache.read.readahead > 0);
      await h2.close();
    });

    test('write-back pages are reused, and memory stays within the dirty limit', async () => {
      const { c, dir } = await fresh({ dirty: { hard: 4 * MiB, background: 2 * MiB } });
      const gen = generator(64 * MiB, 5);
      await pipeline(gen.stream, c.createWriteStream('pages.bin'));
      const st = c.stats().writeback;
      assert.ok(st.peakDirtyBytes <= 4 * MiB, `peak ${st.peakDirtyBytes}`);
      // 64 MiB through a 4 MiB limit: most pages came back from the pool rather than being allocated.
      assert.ok(st.pagesAllocated * c.pageSize <= 16 * MiB, `${st.pagesAllocated} pages of ${c.pageSize} allocated`);
      const local = createHash('sha256').update(await localReadFile(join(dir, 'pages.bin'))).digest('hex');
      assert.equal(local, gen.digest());
    });

    test('dirty limit: a small hard limit, far more written, memory bounded, data complete', async () => {
      const { c, dir } = await fresh({ dirty: { hard: 2 * MiB, background: MiB } });
      const gen = generator(32 * MiB, 99);
      await pipeline(gen.stream, c.createWriteStream('limited.bin'));
      const st = c.stats().writeback;
      assert.ok(st.peakDirtyBytes <= 2 * MiB, `peak ${st.peakDirtyBytes}`);
      assert.ok(st.throttled > 0);
      const local = createHash('sha256').update(await localReadFile(join(dir, 'limited.bin'))).digest('hex');
      assert.equal(local, gen.digest());
    });
  });

  describe(`${name}: directories and names`, () => {
    test('a name that is not UTF-8 is the same bytes in every call: listed, read and removed', async () => {
      const { c, dir } = await fresh();
      const raw = Buffer.from('caf\xe9.txt', 'latin1');
      const onDisk = Buffer.concat([Buffer.from(`${dir}/`), raw]);
      await localWriteFile(onDisk, 'a Latin-1 name');
      const name = decodeBytes(raw);
      assert.deepEqual(await c.readdir('.'), [name]);
      assert.equal(await c.readFile(name, 'utf8'), 'a Latin-1 name');
      await c.writeFile(`${name}.copy`, 'written');
      assert.equal(await localReadFile(Buffer.concat([onDisk, Buffer.from('.copy')]), 'utf8'), 'written');
      await c.rm(name);
      await assert.rejects(localStat(onDisk), { code: 'ENOENT' });
    });
    test('readdir, with and without file types', async () => {
      const { c, dir } = await fresh();
      await localWriteFile(join(dir, 'f'), 'x');
      await localMkdir(join(dir, 'd'));
      await localSymlink('f', join(dir, 'l'));
      assert.deepEqual((await c.readdir('.')).sort(), ['d', 'f', 'l']);
      const ents = await c.readdir('', { withFileTypes: true });
      const by = new Map(ents.map((e) => [e.name, e]));
      assert.ok(ents.every((e) => e instanceof NfsDirent));
      assert.ok(by.get('f')!.isFile());
      assert.ok(by.get('d')!.isDirectory());
      assert.ok(by.get('l')!.isSymbolicLink());
      assert.equal(by.get('f')!.stats!.size, 1);
      await assert.rejects(c.readdir('f'), code('ENOTDIR', 'scandir'));
      await assert.rejects(c.readdir('none'), code('ENOENT', 'scandir'));
    });

    test('readdir of 2,000 entries (paged with cookies)', async () => {
      const { c, dir } = await fresh();
      await localMkdir(join(dir, 'many'));
      const names = Array.from({ length: 2000 }, (_, i) => `entry-with-a-longish-name-${String(i).padStart(5, '0')}`);
      for (let i = 0; i < names.length; i += 100) await Promise.all(names.slice(i, i + 100).map((nm) => localWriteFile(join(dir, 'many', nm), '')));
      const before = c.stats().nfsOps.READDIRPLUS ?? 0;
      const got = await c.readdir('many');
      assert.equal(got.length, 2000);
      assert.deepEqual([...got].sort(), [...names].sort());
      assert.ok((c.stats().nfsOps.READDIRPLUS ?? 0) - before > 1, 'several pages');
      const typed = await c.readdir('many', { withFileTypes: true });
      assert.ok(typed.every((e) => e.isFile()));
      // READDIRPLUS filled the caches: stat needs no LOOKUP.
      const lookups = c.stats().nfsOps.LOOKUP ?? 0;
      await c.stat(`many/${names[1234]}`);
      assert.equal(c.stats().nfsOps.LOOKUP ?? 0, lookups);
    });

    test('mkdir (recursive), rmdir, rm (recursive, force), unlink', async () => {
      const { c, dir } = await fresh();
      assert.equal(await c.mkdir('x/y/z', { recursive: true }), 'x');
      assert.equal(await c.mkdir('x/y/z', { recursive: true }), undefined);
      assert.ok((await localStat(join(dir, 'x/y/z'))).isDirectory());
      await c.mkdir('m', { mode: 0o700 });
      assert.equal((await localStat(join(dir, 'm'))).mode & 0o777, 0o700);
      await assert.rejects(c.mkdir('m'), code('EEXIST', 'mkdir'));
      await c.writeFile('x/y/z/file', 'data');
      await assert.rejects(c.mkdir('x/y/z/file/sub', { recursive: true }), code('ENOTDIR', 'mkdir'));
      await assert.rejects(c.rmdir('x'), code('ENOTEMPTY', 'rmdir'));
      await assert.rejects(c.rm('x'), code('EISDIR', 'rm'));
      await c.rm('x', { recursive: true });
      await assert.rejects(localStat(join(dir, 'x')));
      await c.rm('x', { force: true });
      await assert.rejects(c.rm('x'), code('ENOENT'));
      await c.rmdir('m');
      await c.writeFile('u', '1');
      await c.unlink('u');
      await assert.rejects(c.unlink('u'), code('ENOENT', 'unlink'));
      await assert.rejects(c.stat('u'), code('ENOENT'));
      // A tree of some size.
      for (let i = 0; i < 5; i++) await c.mkdir(`tree/d${i}/e`, { recursive: true });
      for (let i = 0; i < 20; i++) await c.writeFile(`tree/d${i % 5}/e/f${i}`, 'x');
      await c.rm('tree', { recursive: true });
      await assert.rejects(localStat(join(dir, 'tree')));
    });

    test('rename, link, symlink, readlink', async () => {
      const { c, dir } = await fresh();
      await c.writeFile('one', '1');
      await c.rename('one', 'two');
      await assert.rejects(c.stat('one'), code('ENOENT'));
      assert.equal(await localReadFile(join(dir, 'two'), 'utf8'), '1');
      await c.writeFile('three', '3');
      await c.rename('three', 'two'); // replaces
      assert.equal(await c.readFile('two', 'utf8'), '3');
      await c.mkdir('d');
      await c.rename('two', 'd/two');
      assert.equal(await localReadFile(join(dir, 'd/two'), 'utf8'), '3');
      await assert.rejects(c.rename('nope', 'x'), code('ENOENT', 'rename'));
      await c.link('d/two', 'hard');
      assert.equal((await c.stat('hard')).nlink, 2);
      assert.equal((await localStat(join(dir, 'hard'))).ino, (await localStat(join(dir, 'd/two'))).ino);
      await assert.rejects(c.link('d/two', 'hard'), code('EEXIST', 'link'));
      await c.symlink('d/two', 'sym');
      assert.equal(await c.readlink('sym'), 'd/two');
      assert.equal((await localLstat(join(dir, 'sym'))).isSymbolicLink(), true);
      assert.equal(await c.readFile('sym', 'utf8'), '3');
      await c.symlink('d', 'dirlink');
      assert.equal(await c.readFile('dirlink/two', 'utf8'), '3', 'a link in the middle of a path is followed');
      await assert.rejects(c.readlink('hard'), code('EINVAL', 'readlink'));
      await c.symlink('loop2', 'loop1');
      await c.symlink('loop1', 'loop2');
      await assert.rejects(c.stat('loop1'), code('ELOOP'));
    });

    test('chmod, chown, truncate, utimes, access, statfs', async () => {
      const { c, dir } = await fresh();
      await c.writeFile('f', 'abcdef');
      await c.chmod('f', 0o600);
      assert.equal((await localStat(join(dir, 'f'))).mode & 0o777, 0o600);
      if (process.getuid?.() === 0) {
        await c.chown('f', 1234, 5678);
        const ls = await localStat(join(dir, 'f'));
        assert.deepEqual([ls.uid, ls.gid], [1234, 5678]);
        await c.chown('f', 0, -1);
        assert.deepEqual([(await localStat(join(dir, 'f'))).uid, (await localStat(join(dir, 'f'))).gid], [0, 5678]);
      }
      await c.truncate('f', 2);
      assert.equal(await localReadFile(join(dir, 'f'), 'utf8'), 'ab');
      await c.utimes('f', 1_000_000, new Date(2_000_000_000));
      const ls = await localStat(join(dir, 'f'));
      assert.equal(Math.round(ls.atimeMs / 1000), 1_000_000);
      assert.equal(Math.round(ls.mtimeMs / 1000), 2_000_000);
      assert.equal((await c.stat('f')).mtime.getTime(), 2_000_000_000);
      await c.access('f');
      await c.access('f', fsConstants.R_OK | fsConstants.W_OK);
      await assert.rejects(c.access('gone'), code('ENOENT', 'access'));
      const fs = await c.statfs();
      assert.ok(fs.blocks > 0 && fs.bsize > 0 && fs.files >= 0);
      assert.ok(fs.totalBytes >= fs.freeBytes);
    });

    test('another uid is refused a private file: EACCES', { skip: process.getuid?.() === 0 ? false : 'needs root to make the file' }, async () => {
      const { dir, url } = await fresh();
      await localWriteFile(join(dir, 'secret'), 'x');
      await localChmod(join(dir, 'secret'), 0o600);
      const other = await connect(url.replace(/\?/, '?uid=4321&gid=4321&'));
      clients.push(other);
      await assert.rejects(other.open('secret', 'r'), code('EACCES', 'open'));
      await assert.rejects(other.access('secret', fsConstants.R_OK), code('EACCES', 'access'));
      await assert.rejects(other.writeFile('mine', 'x'), code('EACCES', 'open')); // the directory is root's 0755
    });

    test('names: ENAMETOOLONG, EEXIST, EISDIR, ENOTDIR', async () => {
      const { c } = await fresh();
      await assert.rejects(c.writeFile('n'.repeat(300), 'x'), code('ENAMETOOLONG', 'open'));
      await c.mkdir('d');
      await assert.rejects(c.writeFile('d', 'x'), code('EISDIR', 'open'));
      await assert.rejects(c.unlink('d'), (e: unknown) => e instanceof NfsError && ['EISDIR', 'EPERM', 'EACCES'].includes(e.code));
      await c.writeFile('f', 'x');
      await assert.rejects(c.mkdir('f'), code('EEXIST', 'mkdir'));
      await assert.rejects(c.writeFile('f/g', 'x'), code('ENOTDIR', 'open'));
    });
  });

  describe(`${name}: caches`, () => {
    test('attributes: a change made in the export directory shows after the timeout', async () => {
      const { c, dir } = await fresh({}, 'acregmin=1&acregmax=1&acdirmin=1&acdirmax=1');
      await localWriteFile(join(dir, 'f'), 'abc');
      assert.equal((await c.stat('f')).size, 3);
      await appendFile(join(dir, 'f'), 'defg');
      assert.equal((await c.stat('f')).size, 3, 'still the cached attributes');
      await sleep(1100);
      assert.equal((await c.stat('f')).size, 7, 'revalidated after acregmax');
      assert.ok(c.stats().cache.attr.hits > 0);
    });

    test('close-to-open: open sees a change at once, whatever the timeouts', async () => {
      const { c, dir } = await fresh({}, 'acregmin=60&acregmax=60&acdirmin=60&acdirmax=60');
      await localWriteFile(join(dir, 'f'), 'abc');
      assert.equal(await c.readFile('f', 'utf8'), 'abc');
      await sleep(20);
      await localWriteFile(join(dir, 'f'), 'changed!');
      assert.equal((await c.stat('f')).size, 3, 'stat trusts its cache');
      const h = await c.open('f', 'r');
      assert.equal((await h.stat()).size, 8, 'open revalidated');
      const b = Buffer.alloc(16);
      const { bytesRead } = await h.read(b, 0, 16, 0);
      assert.equal(b.subarray(0, bytesRead).toString(), 'changed!', 'and dropped the old data');
      await h.close();
    });

    test('lookups: a negative entry holds until the directory is seen to change', async () => {
      const { c, dir } = await fresh({}, 'acdirmin=60&acdirmax=60');
      await assert.rejects(c.stat('late'), code('ENOENT'));
      await localWriteFile(join(dir, 'late'), 'here');
      await assert.rejects(c.stat('late'), code('ENOENT'), 'the negative entry is trusted');
      assert.ok(c.stats().cache.lookup.negativeHits > 0);
      assert.equal(await c.readFile('late', 'utf8'), 'here', 'open revalidates the directory');
      assert.equal((await c.stat('late')).size, 4);
    });

    test('stats() is plain JSON with per-procedure counts', async () => {
      // Over RPC: a co-located server would take the data through LOCALIO.
      const { c } = await fresh({ localio: false });
      await c.writeFile('s', 'x');
      await c.readFile('s');
      const st = c.stats();
      const back = JSON.parse(JSON.stringify(st)) as typeof st;
      assert.deepEqual(back, st);
      assert.ok(back.nfsOps.CREATE! >= 1);
      assert.ok(back.nfsOps.WRITE! >= 1);
      assert.ok(back.bytesWritten >= 1 && back.bytesRead >= 1);
      assert.equal(back.mountOps.MNT, 1);
      assert.equal(typeof back.retransmits, 'number');
      // Every call went out in some write, and no write went out empty.
      const calls = Object.values(back.nfsOps).reduce((a, b) => a + b, 0) + Object.values(back.mountOps).reduce((a, b) => a + b, 0);
      assert.ok(back.sends >= 1 && back.sends <= calls, `${back.sends} writes for ${calls} calls`);
    });
  });
}
