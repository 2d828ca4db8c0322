// The behaviour every Backend must share, run against each implementation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access, FileType, FsError, type Backend, type Cred, type DirEntry, type SetAttrs } from '../../src/fs/index.js';

export interface HarnessOptions {
  maxFileSize?: bigint;
  allowDevices?: boolean;
}

export interface Harness {
  backend: Backend;
  cleanup(): Promise<void>;
}

export type MakeHarness = (opts?: HarnessOptions) => Promise<Harness>;

export const ROOT: Cred = { uid: 0, gid: 0, gids: [] };
export const ALICE: Cred = { uid: 1001, gid: 1001, gids: [1001, 3000] };
export const BOB: Cred = { uid: 1002, gid: 1002, gids: [1002] };

/** The error code a call fails with, or 'OK'. */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    assert.ok(err instanceof FsError, `expected FsError, got ${String(err)}`);
    return err.code;
  }
}

export async function mkfile(b: Backend, dir: Buffer, name: string, cred = ROOT, mode = 0o644, data?: string): Promise<Buffer> {
  const { node } = await b.create(cred, dir, name, { mode: 'guarded', attrs: { mode } });
  if (data !== undefined) await b.write(cred, node, 0n, Buffer.from(data), 2);
  return node;
}

export async function mkdir(b: Backend, dir: Buffer, name: string, cred = ROOT, mode = 0o755): Promise<Buffer> {
  return (await b.mkdir(cred, dir, name, { mode })).node;
}

/** Every entry of a directory, paging with `maxBytes`. */
export async function listAll(b: Backend, dir: Buffer, cred = ROOT, maxBytes = 4096, plus = false): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  let cookie = 0n;
  for (;;) {
    const page = await b.readdir(cred, dir, cookie, maxBytes, plus);
    out.push(...page.entries);
    if (page.eof) return out;
    assert.ok(page.entries.length > 0, 'a page that is not the last has entries');
    cookie = page.entries[page.entries.length - 1]!.cookie;
  }
}

/** A small seeded generator, so a failing run can be replayed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

async function withHarness(make: MakeHarness, fn: (b: Backend, root: Buffer) => Promise<void>, opts?: HarnessOptions): Promise<void> {
  const h = await make(opts);
  try {
    await fn(h.backend, await h.backend.root());
  } finally {
    await h.cleanup();
  }
}

export function backendSuite(name: string, make: MakeHarness): void {
  const t = (title: string, fn: (b: Backend, root: Buffer) => Promise<void>, opts?: HarnessOptions) =>
    test(`${name}: ${title}`, () => withHarness(make, fn, opts));

  t('root, getattr, . and ..', async (b, root) => {
    const a = await b.getattr(root);
    assert.equal(a.type, FileType.DIR);
    assert.ok(a.fileid > 0n);
    assert.deepEqual((await b.lookup(ROOT, root, '.')).node, root);
    assert.deepEqual((await b.lookup(ROOT, root, '..')).node, root);
    const d = await mkdir(b, root, 'd');
    assert.deepEqual((await b.lookup(ROOT, d, '..')).node, root);
    assert.deepEqual((await b.lookup(ROOT, d, '.')).node, d);
    const f = await mkfile(b, d, 'f');
    assert.equal(await code(b.lookup(ROOT, f, 'x')), 'ENOTDIR');
    assert.equal(await code(b.lookup(ROOT, root, 'missing')), 'ENOENT');
    assert.equal(await code(b.getattr(Buffer.from('nonsense'))), 'EBADHANDLE');
    const l = await b.lookup(ROOT, root, 'd');
    assert.equal(l.dirAttrs?.fileid, a.fileid);
    assert.equal(l.attrs.fileid, (await b.getattr(d)).fileid);
  });

  t('write, read, commit and stable_how', async (b, root) => {
    const f = await mkfile(b, root, 'f');
    const w0 = await b.write(ROOT, f, 0n, Buffer.from('hello world'), 0);
    assert.equal(w0.count, 11);
    assert.ok(w0.committed >= 0);
    assert.equal(w0.wcc.before?.size, 0n);
    assert.equal(w0.wcc.after?.size, 11n);
    for (const stable of [1, 2] as const) {
      const w = await b.write(ROOT, f, 6n, Buffer.from('WORLD'), stable);
      assert.ok(w.committed >= stable, 'committed at least what was asked');
    }
    let r = await b.read(ROOT, f, 0n, 5);
    assert.equal(r.data.toString(), 'hello');
    assert.equal(r.eof, false);
    r = await b.read(ROOT, f, 6n, 100);
    assert.equal(r.data.toString(), 'WORLD');
    assert.equal(r.data.length, 5, 'exactly the bytes read');
    assert.equal(r.eof, true);
    r = await b.read(ROOT, f, 0n, 11);
    assert.equal(r.eof, true, 'eof when the read reaches the end');
    r = await b.read(ROOT, f, 100n, 10);
    assert.equal(r.data.length, 0);
    assert.equal(r.eof, true);
    assert.equal((await b.read(ROOT, f, 0n, 0)).data.length, 0);
    const empty = await b.write(ROOT, f, 5000n, Buffer.alloc(0), 0);
    assert.equal(empty.count, 0);
    assert.equal(empty.wcc.after?.size, 11n, 'an empty write past the end does not extend');
    // A sparse write leaves zeros in the hole.
    await b.write(ROOT, f, 100_000n, Buffer.from('x'), 1);
    r = await b.read(ROOT, f, 99_990n, 100);
    assert.deepEqual([...r.data], [...Buffer.alloc(10), 0x78]);
    assert.equal((await b.getattr(f)).size, 100_001n);
    const c = await b.commit(f, 0n, 0);
    assert.equal(c.after?.size, 100_001n);
  });

  t('offsets and file size limits', async (b, root) => {
    const f = await mkfile(b, root, 'f');
    assert.equal(await code(b.write(ROOT, f, 1n << 63n, Buffer.from('x'), 0)), 'EFBIG');
    assert.equal(await code(b.write(ROOT, f, (1n << 63n) - 1n, Buffer.from('xy'), 0)), 'EFBIG');
    const r = await b.read(ROOT, f, 1n << 63n, 10);
    assert.equal(r.data.length, 0);
    assert.equal(r.eof, true);
    // With a 1 MiB limit: a write crossing it is short, one past it fails.
    const max = 1n << 20n;
    const w = await b.write(ROOT, f, max - 2n, Buffer.from('abcdef'), 0);
    assert.equal(w.count, 2);
    assert.equal(await code(b.write(ROOT, f, max, Buffer.from('x'), 0)), 'EFBIG');
    assert.equal(await code(b.setattr(ROOT, f, { size: max + 1n })), 'EFBIG');
    assert.equal((await b.fsinfo(f)).maxFileSize, max);
  }, { maxFileSize: 1n << 20n });

  t('create: unchecked, guarded, exclusive', async (b, root) => {
    const g = await b.create(ROOT, root, 'g', { mode: 'guarded', attrs: { mode: 0o640 } });
    assert.equal(g.attrs.mode, 0o640, 'mode as asked, no umask');
    assert.equal(g.attrs.type, FileType.REG);
    assert.ok(g.dirWcc.after);
    assert.equal(await code(b.create(ROOT, root, 'g', { mode: 'guarded', attrs: {} })), 'EEXIST');
    await b.write(ROOT, g.node, 0n, Buffer.from('data'), 2);
    const u = await b.create(ROOT, root, 'g', { mode: 'unchecked', attrs: { size: 0n } });
    assert.deepEqual(u.node, g.node);
    assert.equal(u.attrs.size, 0n, 'unchecked on an existing file applies size');
    await mkdir(b, root, 'dir');
    assert.equal(await code(b.create(ROOT, root, 'dir', { mode: 'unchecked', attrs: {} })), 'EEXIST');
    const verifier = Buffer.from('0123abcd');
    const e1 = await b.create(ROOT, root, 'x', { mode: 'exclusive', verifier });
    const e2 = await b.create(ROOT, root, 'x', { mode: 'exclusive', verifier: Buffer.from(verifier) });
    assert.deepEqual(e2.node, e1.node, 'a retransmitted exclusive create succeeds');
    assert.equal(await code(b.create(ROOT, root, 'x', { mode: 'exclusive', verifier: Buffer.from('other!!!') })), 'EEXIST');
    await b.setattr(ROOT, e1.node, { mode: 0o644, atime: 'now', mtime: 'now' });
    assert.equal(await code(b.create(ROOT, root, 'x', { mode: 'exclusive', verifier })), 'EEXIST');
    assert.equal(await code(b.create(ROOT, root, 'y', { mode: 'exclusive', verifier: Buffer.alloc(4) })), 'EINVAL');
    assert.equal(await code(b.create(ROOT, g.node, 'z', { mode: 'guarded', attrs: {} })), 'ENOTDIR');
  });

  t('names', async (b, root) => {
    const guarded = (name: string) => b.create(ROOT, root, name, { mode: 'guarded', attrs: {} });
    assert.equal(await code(guarded('a/b')), 'EINVAL');
    assert.equal(await code(guarded('a\0b')), 'EINVAL');
    assert.equal(await code(guarded('')), 'EINVAL');
    assert.equal(await code(guarded('bad\ud800')), 'EINVAL');
    assert.equal(await code(guarded('x'.repeat(256))), 'ENAMETOOLONG');
    assert.equal(await code(guarded('é'.repeat(128))), 'ENAMETOOLONG', '256 bytes of UTF-8');
    assert.equal(await code(guarded('x'.repeat(255))), 'OK');
    assert.equal(await code(guarded('.')), 'EEXIST');
    assert.equal(await code(b.mkdir(ROOT, root, '..', {})), 'EEXIST');
    assert.equal(await code(b.symlink(ROOT, root, '.', 't', {})), 'EEXIST');
    assert.equal(await code(b.remove(ROOT, root, '.')), 'EINVAL');
    assert.equal(await code(b.rmdir(ROOT, root, '..')), 'EINVAL');
    await mkfile(b, root, 'f');
    assert.equal(await code(b.rename(ROOT, root, 'f', root, '.')), 'EINVAL');
    assert.equal(await code(b.rename(ROOT, root, '..', root, 'g')), 'EINVAL');
    assert.equal(await code(b.lookup(ROOT, root, 'a/b')), 'EINVAL');
    assert.equal(await code(b.lookup(ROOT, root, 'y'.repeat(300))), 'ENAMETOOLONG');
  });

  t('mkdir, symlink, readlink, mknod', async (b, root) => {
    const before = await b.getattr(root);
    const d = await b.mkdir(ROOT, root, 'd', { mode: 0o2750 });
    assert.equal(d.attrs.type, FileType.DIR);
    assert.equal(d.attrs.mode, 0o2750);
    assert.equal((await b.getattr(root)).nlink, before.nlink + 1);
    assert.equal(await code(b.mkdir(ROOT, root, 'd', {})), 'EEXIST');
    const s = await b.symlink(ROOT, root, 'l', '../../etc/passwd', {});
    assert.equal(s.attrs.type, FileType.LNK);
    assert.equal((await b.readlink(ROOT, s.node)).target, '../../etc/passwd');
    assert.equal(await code(b.readlink(ROOT, d.node)), 'EINVAL');
    assert.equal(await code(b.symlink(ROOT, root, 'l2', 'a\0b', {})), 'EINVAL');
    const fifo = await b.mknod(ROOT, root, 'fifo', FileType.FIFO, { mode: 0o620 });
    assert.equal(fifo.attrs.type, FileType.FIFO);
    assert.equal(fifo.attrs.mode, 0o620);
    assert.equal(await code(b.mknod(ALICE, d.node, 'sock', FileType.SOCK, {})), 'EACCES');
    const sock2 = await b.mknod(ROOT, root, 'sock', FileType.SOCK, { mode: 0o600 });
    assert.equal(sock2.attrs.type, FileType.SOCK);
    assert.equal((await b.lookup(ROOT, root, 'sock')).attrs.type, FileType.SOCK);
    assert.equal(await code(b.mknod(ROOT, root, 'blk', FileType.BLK, {}, { major: 1, minor: 3 })), 'EBADTYPE');
    assert.equal(await code(b.mknod(ROOT, root, 'reg', FileType.REG, {})), 'EBADTYPE');
    assert.equal(await code(b.read(ROOT, fifo.node, 0n, 10)), 'EINVAL');
  });

  t('device nodes when allowed', async (b, root) => {
    const c = await b.mknod(ROOT, root, 'null2', FileType.CHR, { mode: 0o666 }, { major: 1, minor: 3 });
    assert.equal(c.attrs.type, FileType.CHR);
    assert.deepEqual(c.attrs.rdev, { major: 1, minor: 3 });
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    assert.equal(await code(b.mknod(ALICE, pub, 'blk', FileType.BLK, {}, { major: 7, minor: 0 })), 'EPERM');
  }, { allowDevices: true });

  t('remove, rmdir and ESTALE', async (b, root) => {
    const d = await mkdir(b, root, 'd');
    const f = await mkfile(b, d, 'f', ROOT, 0o644, 'content');
    assert.equal(await code(b.remove(ROOT, root, 'nope')), 'ENOENT');
    assert.equal(await code(b.remove(ROOT, root, 'd')), 'EISDIR');
    assert.equal(await code(b.rmdir(ROOT, d, 'f')), 'ENOTDIR');
    assert.equal(await code(b.rmdir(ROOT, root, 'd')), 'ENOTEMPTY');
    const before = await b.getattr(d);
    const r = await b.remove(ROOT, d, 'f');
    assert.ok(r.dirWcc.after);
    assert.equal(r.dirWcc.before?.size, before.size);
    for (const op of [b.getattr(f), b.read(ROOT, f, 0n, 1), b.write(ROOT, f, 0n, Buffer.from('x'), 0), b.setattr(ROOT, f, { mode: 0o600 })]) {
      assert.equal(await code(op), 'ESTALE');
    }
    await b.rmdir(ROOT, root, 'd');
    assert.equal(await code(b.getattr(d)), 'ESTALE');
    assert.equal(await code(b.lookup(ROOT, d, 'x')), 'ESTALE');
    assert.equal(await code(b.readdir(ROOT, d, 0n, 4096, false)), 'ESTALE');
    // The freed inode (likely reused here) does not bring the old ids back.
    const g = await mkfile(b, root, 'g');
    const g2 = await mkdir(b, root, 'g2');
    assert.equal(await code(b.getattr(f)), 'ESTALE');
    assert.equal(await code(b.getattr(d)), 'ESTALE');
    assert.equal((await b.getattr(g)).type, FileType.REG);
    assert.equal((await b.getattr(g2)).type, FileType.DIR);
  });

  t('rename keeps node ids', async (b, root) => {
    const d1 = await mkdir(b, root, 'd1');
    const sub = await mkdir(b, d1, 'sub');
    const f = await mkfile(b, sub, 'f', ROOT, 0o644, 'payload');
    await b.rename(ROOT, sub, 'f', sub, 'g');
    assert.deepEqual((await b.lookup(ROOT, sub, 'g')).node, f);
    assert.equal(await code(b.lookup(ROOT, sub, 'f')), 'ENOENT');
    const w = await b.rename(ROOT, root, 'd1', root, 'd2');
    assert.ok(w.fromWcc.after && w.toWcc.after);
    assert.equal((await b.read(ROOT, f, 0n, 100)).data.toString(), 'payload', 'id valid after its parent moved');
    assert.equal((await b.getattr(sub)).type, FileType.DIR);
    const d3 = await mkdir(b, root, 'd3');
    await b.rename(ROOT, sub, 'g', d3, 'h');
    assert.equal((await b.read(ROOT, f, 0n, 100)).data.toString(), 'payload');
    const d2 = (await b.lookup(ROOT, root, 'd2')).node;
    await b.rename(ROOT, d2, 'sub', d3, 'sub');
    assert.deepEqual((await b.lookup(ROOT, d3, 'sub')).node, sub);
    assert.deepEqual((await b.lookup(ROOT, sub, '..')).node, d3);
    // Over an existing file: the old target's id is stale.
    const victim = await mkfile(b, d3, 'victim', ROOT, 0o644, 'old');
    await b.rename(ROOT, d3, 'h', d3, 'victim');
    assert.equal(await code(b.getattr(victim)), 'ESTALE');
    assert.equal((await b.read(ROOT, f, 0n, 100)).data.toString(), 'payload');
    // Errors.
    const inner = await mkdir(b, sub, 'inner');
    assert.equal(await code(b.rename(ROOT, d3, 'sub', inner, 'loop')), 'EINVAL');
    assert.equal(await code(b.rename(ROOT, d3, 'sub', sub, 'self')), 'EINVAL');
    assert.equal(await code(b.rename(ROOT, d3, 'victim', sub, 'inner')), 'EISDIR');
    await mkfile(b, inner, 'x');
    const other = await mkdir(b, root, 'other');
    await mkdir(b, other, 'inner');
    const notEmpty = await code(b.rename(ROOT, other, 'inner', sub, 'inner'));
    assert.ok(notEmpty === 'ENOTEMPTY' || notEmpty === 'EEXIST', notEmpty);
    assert.equal(await code(b.rename(ROOT, root, 'missing', root, 'x')), 'ENOENT');
    // Hard links to one inode: renaming one over the other changes nothing.
    await b.link(ROOT, f, d3, 'victim2');
    await b.rename(ROOT, d3, 'victim', d3, 'victim2');
    assert.equal((await b.getattr(f)).nlink, 2);
  });

  t('link', async (b, root) => {
    const f = await mkfile(b, root, 'f', ROOT, 0o644, 'linked');
    const d = await mkdir(b, root, 'd');
    const l = await b.link(ROOT, f, d, 'f2');
    assert.equal(l.attrs.nlink, 2);
    assert.ok(l.dirWcc.after);
    assert.equal(await code(b.link(ROOT, f, d, 'f2')), 'EEXIST');
    assert.equal(await code(b.link(ROOT, d, root, 'dlink')), 'EPERM');
    await b.remove(ROOT, root, 'f');
    assert.equal((await b.read(ROOT, f, 0n, 100)).data.toString(), 'linked', 'still alive through the other link');
    assert.equal((await b.getattr(f)).nlink, 1);
    // Others' files need read and write access to be linked.
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    const secret = await mkfile(b, pub, 'secret', ALICE, 0o600);
    assert.equal(await code(b.link(BOB, secret, pub, 'mine')), 'EPERM');
    assert.equal(await code(b.link(ALICE, secret, pub, 'mine')), 'OK');
  });

  t('permission checks on data and names', async (b, root) => {
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    const a = await b.create(ALICE, pub, 'a', { mode: 'guarded', attrs: { mode: 0o600 } });
    assert.equal(a.attrs.uid, ALICE.uid, 'owned by the caller');
    assert.equal(a.attrs.gid, ALICE.gid);
    await b.write(ALICE, a.node, 0n, Buffer.from('alice'), 2);
    assert.equal(await code(b.read(BOB, a.node, 0n, 10)), 'EACCES');
    assert.equal(await code(b.write(BOB, a.node, 0n, Buffer.from('x'), 0)), 'EACCES');
    assert.equal((await b.read(ROOT, a.node, 0n, 10)).data.toString(), 'alice', 'root reads anything');
    // The owner reads and writes whatever the mode (RFC 1813 4.4).
    await b.setattr(ALICE, a.node, { mode: 0o000 });
    assert.equal((await b.read(ALICE, a.node, 0n, 10)).data.toString(), 'alice');
    assert.equal((await b.write(ALICE, a.node, 5n, Buffer.from('!'), 0)).count, 1);
    // A file others may read but not write.
    const r = await mkfile(b, pub, 'r', ALICE, 0o644, 'shared');
    assert.equal((await b.read(BOB, r, 0n, 10)).data.toString(), 'shared');
    assert.equal(await code(b.write(BOB, r, 0n, Buffer.from('x'), 0)), 'EACCES');
    // Execute-only files can be read (a client must read what it runs).
    const x = await mkfile(b, pub, 'x', ALICE, 0o711, 'binary');
    assert.equal((await b.read(BOB, x, 0n, 10)).data.toString(), 'binary');
    // Directories: lookup needs x, create/remove need w+x, readdir needs r.
    const priv = await mkdir(b, pub, 'priv', ALICE, 0o700);
    await mkfile(b, priv, 'inside', ALICE);
    assert.equal(await code(b.lookup(BOB, priv, 'inside')), 'EACCES');
    assert.equal(await code(b.readdir(BOB, priv, 0n, 4096, false)), 'EACCES');
    const ro = await mkdir(b, pub, 'ro', ALICE, 0o755);
    await mkfile(b, ro, 'f', ALICE);
    assert.equal((await b.lookup(BOB, ro, 'f')).attrs.uid, ALICE.uid);
    assert.equal(await code(b.create(BOB, ro, 'new', { mode: 'guarded', attrs: {} })), 'EACCES');
    assert.equal(await code(b.mkdir(BOB, ro, 'new', {})), 'EACCES');
    assert.equal(await code(b.remove(BOB, ro, 'f')), 'EACCES');
    assert.equal(await code(b.rename(BOB, ro, 'f', pub, 'stolen')), 'EACCES');
    assert.equal(await code(b.symlink(BOB, ro, 'l', 'x', {})), 'EACCES');
    const search = await mkdir(b, pub, 'search', ALICE, 0o711);
    await mkfile(b, search, 'known', ALICE);
    assert.equal(await code(b.readdir(BOB, search, 0n, 4096, false)), 'EACCES');
    assert.equal((await b.lookup(BOB, search, 'known')).attrs.type, FileType.REG);
    // Moving a directory to a new parent needs write access to it (its `..` changes).
    const bobs = await mkdir(b, pub, 'bobs', BOB, 0o777);
    await mkdir(b, bobs, 'alices', ALICE, 0o755);
    assert.equal(await code(b.rename(BOB, bobs, 'alices', pub, 'moved')), 'EACCES');
    assert.equal(await code(b.rename(BOB, bobs, 'alices', bobs, 'renamed')), 'OK');
  });

  t('access', async (b, root) => {
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    const all = Access.READ | Access.LOOKUP | Access.MODIFY | Access.EXTEND | Access.DELETE | Access.EXECUTE;
    const f = await mkfile(b, pub, 'f', ALICE, 0o644);
    assert.equal((await b.access(BOB, f, all)).granted, Access.READ);
    assert.equal((await b.access(ALICE, f, all)).granted, Access.READ | Access.MODIFY | Access.EXTEND);
    assert.equal((await b.access(ROOT, f, all)).granted, Access.READ | Access.MODIFY | Access.EXTEND, 'root needs an x bit to execute');
    await b.setattr(ALICE, f, { mode: 0o744 });
    assert.equal((await b.access(ROOT, f, Access.EXECUTE)).granted, Access.EXECUTE);
    assert.equal((await b.access(BOB, f, Access.EXECUTE)).granted, 0);
    const d = await mkdir(b, pub, 'd', ALICE, 0o755);
    assert.equal((await b.access(BOB, d, all)).granted, Access.READ | Access.LOOKUP);
    assert.equal((await b.access(ALICE, d, all)).granted, Access.READ | Access.LOOKUP | Access.MODIFY | Access.EXTEND | Access.DELETE);
    assert.equal((await b.access(ROOT, d, Access.LOOKUP)).granted, Access.LOOKUP);
    const grp = await mkfile(b, pub, 'g', ROOT, 0o060);
    await b.setattr(ROOT, grp, { gid: 3000 });
    assert.equal((await b.access(ALICE, grp, all)).granted, Access.READ | Access.MODIFY | Access.EXTEND, 'through a supplementary group');
    assert.equal((await b.access(BOB, grp, all)).granted, 0);
  });

  t('sticky directories', async (b, root) => {
    const tmp = await mkdir(b, root, 'tmp', ROOT, 0o1777);
    await mkfile(b, tmp, 'alices', ALICE, 0o666);
    assert.equal(await code(b.remove(BOB, tmp, 'alices')), 'EPERM');
    assert.equal(await code(b.rename(BOB, tmp, 'alices', tmp, 'bobs')), 'EPERM');
    await mkfile(b, tmp, 'bobs', BOB, 0o666);
    assert.equal(await code(b.rename(ALICE, tmp, 'alices', tmp, 'bobs')), 'EPERM', 'cannot replace another user\'s entry');
    assert.equal(await code(b.remove(ALICE, tmp, 'alices')), 'OK');
    assert.equal(await code(b.remove(ROOT, tmp, 'bobs')), 'OK');
    // The directory's owner may remove anything in it.
    const own = await mkdir(b, root, 'own', ROOT, 0o777);
    await b.setattr(ROOT, own, { uid: ALICE.uid, mode: 0o1777 });
    await mkfile(b, own, 'bobs', BOB);
    assert.equal(await code(b.remove(ALICE, own, 'bobs')), 'OK');
  });

  t('setattr rules', async (b, root) => {
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    const f = await mkfile(b, pub, 'f', ALICE, 0o644, 'some data');
    assert.equal(await code(b.setattr(BOB, f, { mode: 0o777 })), 'EPERM');
    assert.equal((await b.setattr(ALICE, f, { mode: 0o640 })).after?.mode, 0o640);
    assert.equal(await code(b.setattr(ALICE, f, { uid: BOB.uid })), 'EPERM', 'chown is root\'s');
    assert.equal(await code(b.setattr(ALICE, f, { uid: ALICE.uid })), 'OK', 'a no-op chown is fine');
    assert.equal((await b.setattr(ALICE, f, { gid: 3000 })).after?.gid, 3000, 'chgrp to a group of the owner');
    assert.equal(await code(b.setattr(ALICE, f, { gid: 4000 })), 'EPERM');
    assert.equal(await code(b.setattr(BOB, f, { gid: 1002 })), 'EPERM');
    const t0 = { sec: 1_000_000_000, nsec: 0 };
    assert.equal(await code(b.setattr(BOB, f, { mtime: t0 })), 'EPERM');
    assert.equal(await code(b.setattr(BOB, f, { mtime: 'now' })), 'EACCES');
    const m = await b.setattr(ALICE, f, { mtime: t0, atime: { sec: 1_000_000_001, nsec: 0 } });
    assert.deepEqual(m.after?.mtime, t0);
    assert.deepEqual(m.after?.atime, { sec: 1_000_000_001, nsec: 0 });
    const shared = await mkfile(b, pub, 'shared', ALICE, 0o666);
    assert.equal(await code(b.setattr(BOB, shared, { mtime: 'now', atime: 'now' })), 'OK', 'writers may touch');
    assert.equal(await code(b.setattr(BOB, f, { size: 0n })), 'EACCES');
    await b.setattr(ALICE, f, { mode: 0o400 });
    const tr = await b.setattr(ALICE, f, { size: 4n });
    assert.equal(tr.after?.size, 4n, 'the owner may truncate');
    assert.equal(tr.before?.size, 9n);
    assert.equal((await b.read(ALICE, f, 0n, 100)).data.toString(), 'some');
    const grown = await b.setattr(ROOT, f, { size: 10n });
    assert.equal(grown.after?.size, 10n);
    assert.deepEqual([...(await b.read(ROOT, f, 4n, 100)).data], new Array(6).fill(0));
    assert.equal(await code(b.setattr(ROOT, pub, { size: 0n })), 'EISDIR');
    const l = await b.symlink(ROOT, pub, 'l', 'f', {});
    assert.equal(await code(b.setattr(ROOT, l.node, { size: 0n })), 'EINVAL');
    // guard: ctime must match.
    const now = await b.getattr(f);
    assert.equal(await code(b.setattr(ROOT, f, { mode: 0o600 }, { sec: now.ctime.sec - 10, nsec: 0 })), 'ENOTSYNC');
    assert.equal(await code(b.setattr(ROOT, f, { mode: 0o600 }, now.ctime)), 'OK');
    const mtime = (await b.getattr(f)).mtime;
    const root1 = await b.setattr(ROOT, f, { uid: BOB.uid, gid: BOB.gid });
    assert.equal(root1.after?.uid, BOB.uid);
    assert.equal(root1.after?.gid, BOB.gid);
    assert.deepEqual(root1.after?.mtime, mtime, 'chown leaves mtime');
    assert.equal(await code(b.setattr(ROOT, f, { atime: { sec: 1, nsec: 2e9 } })), 'EINVAL');
  });

  t('setuid and setgid bits', async (b, root) => {
    const pub = await mkdir(b, root, 'pub', ROOT, 0o777);
    const f = await mkfile(b, pub, 'prog', ROOT, 0o755);
    await b.setattr(ROOT, f, { uid: ALICE.uid, gid: ALICE.gid });
    await b.setattr(ROOT, f, { mode: 0o6755 });
    assert.equal((await b.getattr(f)).mode, 0o6755);
    await b.write(ROOT, f, 0n, Buffer.from('root writes'), 2);
    assert.equal((await b.getattr(f)).mode, 0o6755, 'root keeps the bits');
    await b.write(ALICE, f, 0n, Buffer.from('alice writes'), 2);
    assert.equal((await b.getattr(f)).mode, 0o0755, 'a write by others clears setuid and group-exec setgid');
    await b.setattr(ROOT, f, { mode: 0o4755 });
    await b.setattr(ROOT, f, { uid: BOB.uid });
    assert.equal((await b.getattr(f)).mode, 0o755, 'chown clears setuid');
    await b.setattr(ROOT, f, { mode: 0o2745 });
    await b.write(BOB, f, 0n, Buffer.from('x'), 0);
    assert.equal((await b.getattr(f)).mode, 0o2745, 'setgid without group exec is a lock bit, kept');
    // Setting setgid for a group one is not in drops it.
    const g = await mkfile(b, pub, 'g', ALICE, 0o644);
    await b.setattr(ROOT, g, { gid: 5000 });
    assert.equal((await b.setattr(ALICE, g, { mode: 0o2755 })).after?.mode, 0o755);
  });

  t('ownership of new objects and setgid directories', async (b, root) => {
    const sg = await mkdir(b, root, 'sg', ROOT, 0o777);
    await b.setattr(ROOT, sg, { gid: 500, mode: 0o2777 });
    const f = await b.create(ALICE, sg, 'f', { mode: 'guarded', attrs: { mode: 0o644 } });
    assert.equal(f.attrs.uid, ALICE.uid);
    assert.equal(f.attrs.gid, 500, 'group of a setgid directory');
    const d = await b.mkdir(ALICE, sg, 'd', { mode: 0o755 });
    assert.equal(d.attrs.gid, 500);
    assert.equal(d.attrs.mode, 0o2755, 'subdirectories inherit setgid');
    const s = await b.symlink(BOB, sg, 's', 'f', {});
    assert.equal(s.attrs.uid, BOB.uid);
    const own = await b.create(ROOT, sg, 'given', { mode: 'guarded', attrs: { mode: 0o600, uid: 42, gid: 43 } });
    assert.equal(own.attrs.uid, 42, 'root may create on behalf of others');
    assert.equal(own.attrs.gid, 43);
    const ignored = await b.create(ALICE, sg, 'ignored', { mode: 'guarded', attrs: { uid: 42 } });
    assert.equal(ignored.attrs.uid, ALICE.uid, 'others cannot');
    const t0 = { sec: 1_500_000_000, nsec: 0 };
    const timed = await b.create(ROOT, sg, 'timed', { mode: 'unchecked', attrs: { mtime: t0 } });
    assert.deepEqual(timed.attrs.mtime, t0);
  });

  t('readdir: entries, cookies, plus, errors', async (b, root) => {
    const d = await mkdir(b, root, 'd');
    const names = ['a', 'b', 'c', 'ünïcode', 'x'.repeat(255)];
    for (const n of names) await mkfile(b, d, n);
    await mkdir(b, d, 'sub');
    const all = await listAll(b, d, ROOT, 1024);
    assert.deepEqual(all.slice(0, 2).map((e) => [e.name, e.cookie]), [['.', 1n], ['..', 2n]]);
    assert.deepEqual(all.map((e) => e.name).slice(2).sort(), [...names, 'sub'].sort());
    assert.equal(new Set(all.map((e) => e.cookie)).size, all.length, 'cookies are unique');
    assert.ok(all.every((e) => e.cookie !== 0n && e.node === undefined));
    assert.equal(all[0]!.fileid, (await b.getattr(d)).fileid);
    assert.equal(all[1]!.fileid, (await b.getattr(root)).fileid);
    const plus = await b.readdir(ROOT, d, 0n, 64 * 1024, true);
    assert.equal(plus.eof, true);
    assert.equal(plus.cookieverf.length, 8);
    for (const e of plus.entries) {
      assert.ok(e.node && e.attrs, `${e.name} has node and attributes`);
      if (e.name === '.' || e.name === '..') continue;
      const l = await b.lookup(ROOT, d, e.name);
      assert.deepEqual(e.node, l.node);
      assert.equal(e.fileid, l.attrs.fileid);
      assert.equal(e.attrs!.fileid, e.fileid);
    }
    const again = await b.readdir(ROOT, d, 0n, 64 * 1024, false);
    assert.deepEqual(again.entries.map((e) => e.cookie), plus.entries.map((e) => e.cookie), 'cookies are stable');
    // Resuming after each entry gives exactly what followed it.
    for (let i = 0; i < plus.entries.length; i++) {
      const rest = await b.readdir(ROOT, d, plus.entries[i]!.cookie, 64 * 1024, false);
      assert.deepEqual(rest.entries.map((e) => e.name), plus.entries.slice(i + 1).map((e) => e.name));
    }
    // A deleted entry's cookie still positions correctly.
    const bIdx = plus.entries.findIndex((e) => e.name === 'b');
    await b.remove(ROOT, d, 'b');
    const afterB = await b.readdir(ROOT, d, plus.entries[bIdx]!.cookie, 64 * 1024, false);
    assert.deepEqual(afterB.entries.map((e) => e.name), plus.entries.slice(bIdx + 1).map((e) => e.name));
    // Forged cookies.
    const c = plus.entries[3]!.cookie;
    assert.equal(await code(b.readdir(ROOT, d, c ^ 1n, 4096, false)), 'EBADCOOKIE');
    assert.equal(await code(b.readdir(ROOT, d, 12345n, 4096, false)), 'EBADCOOKIE');
    assert.equal(await code(b.readdir(ROOT, d, (1n << 64n) - 1n, 4096, false)), 'EBADCOOKIE');
    assert.equal(await code(b.readdir(ROOT, root, c, 4096, false)), 'EBADCOOKIE', 'a cookie of another directory');
    assert.equal(await code(b.readdir(ROOT, d, 0n, 100, false)), 'ETOOSMALL');
    const one = await b.readdir(ROOT, d, 0n, 108 + 28, false);
    assert.deepEqual(one.entries.map((e) => e.name), ['.']);
    assert.equal(one.eof, false);
    const f = (await b.lookup(ROOT, d, 'a')).node;
    assert.equal(await code(b.readdir(ROOT, f, 0n, 4096, false)), 'ENOTDIR');
    const empty = await listAll(b, await mkdir(b, root, 'empty'));
    assert.deepEqual(empty.map((e) => e.name), ['.', '..']);
  });

  test(`${name}: readdir paging over 10,000 entries under churn`, async () => {
    const h = await make();
    try {
      const b = h.backend;
      const d = await mkdir(b, await b.root(), 'big');
      const live = new Set<string>();
      for (let i = 0; i < 10_000; i++) {
        const n = `f${i.toString(36)}-${'y'.repeat(i % 17)}`;
        await b.create(ROOT, d, n, { mode: 'unchecked', attrs: {} });
        live.add(n);
      }
      const initial = new Set(live);
      const removed = new Set<string>();
      const rand = rng(12345);
      const seen = new Map<string, number>();
      let cookie = 0n;
      let pages = 0;
      for (;;) {
        const plus = pages % 3 === 2;
        const page = await b.readdir(ROOT, d, cookie, plus ? 16384 : 4096, plus);
        pages++;
        for (const e of page.entries) {
          seen.set(e.name, (seen.get(e.name) ?? 0) + 1);
          if (plus && e.name !== '.' && e.name !== '..') assert.ok(e.node && e.attrs);
        }
        if (page.eof) break;
        cookie = page.entries[page.entries.length - 1]!.cookie;
        // Churn between pages: delete some entries, add others.
        const names = [...live];
        for (let k = 0; k < 15; k++) {
          const victim = names[Math.floor(rand() * names.length)]!;
          if (!live.has(victim)) continue;
          await b.remove(ROOT, d, victim);
          live.delete(victim);
          removed.add(victim);
        }
        for (let k = 0; k < 15; k++) {
          const n = `new-${pages}-${k}`;
          await b.create(ROOT, d, n, { mode: 'unchecked', attrs: {} });
          live.add(n);
        }
      }
      assert.ok(pages > 20, `paged (${pages} pages)`);
      for (const [n, count] of seen) assert.equal(count, 1, `${n} listed once`);
      for (const n of initial) {
        if (!removed.has(n)) assert.ok(seen.has(n), `surviving entry ${n} not skipped`);
      }
      for (const n of seen.keys()) {
        if (n !== '.' && n !== '..') assert.ok(initial.has(n) || n.startsWith('new-'), `${n} existed`);
      }
    } finally {
      await h.cleanup();
    }
  });

  t('fsstat, fsinfo, pathconf', async (b, root) => {
    const s = await b.fsstat(root);
    assert.ok(s.tbytes > 0n && s.fbytes <= s.tbytes && s.abytes <= s.fbytes);
    assert.ok(s.tfiles > 0n && s.ffiles <= s.tfiles && s.afiles <= s.ffiles);
    assert.equal(s.attrs.type, FileType.DIR);
    const i = await b.fsinfo(root);
    assert.ok(i.maxFileSize > 0n && i.linkSupport && i.symlinkSupport && i.canSetTime);
    const p = await b.pathconf(root);
    assert.equal(p.nameMax, 255);
    assert.ok(p.linkmax > 0 && p.noTrunc && p.chownRestricted && p.casePreserving && !p.caseInsensitive);
  });

  t('operations on the wrong type', async (b, root) => {
    const d = await mkdir(b, root, 'd');
    const f = await mkfile(b, root, 'f');
    const l = (await b.symlink(ROOT, root, 'l', 'f', {})).node;
    assert.equal(await code(b.read(ROOT, d, 0n, 1)), 'EISDIR');
    assert.equal(await code(b.write(ROOT, d, 0n, Buffer.from('x'), 0)), 'EISDIR');
    assert.equal(await code(b.read(ROOT, l, 0n, 1)), 'EINVAL');
    assert.equal(await code(b.write(ROOT, l, 0n, Buffer.from('x'), 0)), 'EINVAL');
    assert.equal(await code(b.mkdir(ROOT, f, 'x', {})), 'ENOTDIR');
    assert.equal(await code(b.remove(ROOT, f, 'x')), 'ENOTDIR');
    assert.equal(await code(b.rename(ROOT, root, 'f', f, 'x')), 'ENOTDIR');
    assert.equal(await code(b.lookup(ROOT, l, 'x')), 'ENOTDIR');
    assert.equal((await b.getattr(l)).type, FileType.LNK);
    assert.equal(await code(b.setattr(ROOT, f, { mode: -1 } as SetAttrs)), 'EINVAL');
  });
}
