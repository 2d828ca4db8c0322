// The NFSv3 and MOUNT behaviour every backend must give through the server,
// driven over loopback TCP procedure by procedure. server.test.ts runs it
// over a real directory (LocalBackend), memory.test.ts over MemoryBackend.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { RunningServer } from '../../src/server/index.js';
import type { AuthSys, RpcClient } from '../../src/rpc/index.js';
import { RpcGarbageArgsError } from '../../src/rpc/index.js';
import { decodeBytes } from '../../src/xdr/index.js';
import { ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK, type nfs_fh3 } from '../../src/proto/nfs3.gen.js';
import { mountstat3 } from '../../src/proto/mount3.gen.js';
import { authSysBody, callRecord, parseReply, rawConnect } from '../helpers/raw-rpc.js';
import { ALICE as DEFAULT_ALICE, BOB as DEFAULT_BOB, ROOT, Nfs, decodeNfsRes, encodeNfsArgs, expectStatus, fh, mount, mountCall, nfsCall, nfsClient, ok, sattr } from '../helpers/nfs.js';

export interface Fixture {
  server: RunningServer;
  /** The path clients MNT. */
  exportPath: string;
  cleanup(): Promise<void>;
}

export interface FixtureOptions {
  /** Client list of the export as exports(5) writes it, e.g. `*(ro,insecure)`; default: `tsnfs serve DIR`'s rules. */
  clients?: string;
}

export type MakeFixture = (opts?: FixtureOptions) => Promise<Fixture>;

export interface SuiteOptions {
  /** Whether owners can be given away (a LocalBackend run as non-root cannot chown). */
  canChown: boolean;
  /**
   * The two users the suite acts as (default ALICE and BOB). Without chown,
   * files belong to the server process whoever creates them: `alice` must
   * then be the process's own user for her files to be hers.
   */
  users?: { alice: AuthSys; bob: AuthSys };
  /** The `committed` a WRITE reports for `stable` (backends may do better than asked). */
  committed: (stable: 0 | 1 | 2) => 0 | 1 | 2;
}

const ALL_ACCESS = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE | ACCESS3_EXECUTE;
const WRITE_BITS = ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
const MiB = 1 << 20;
const OFFSET_2_63 = 1n << 63n;

export function nfsSuite(label: string, make: MakeFixture, so: SuiteOptions): void {
  const ALICE = so.users?.alice ?? DEFAULT_ALICE;
  const BOB = so.users?.bob ?? DEFAULT_BOB;
  describe(`NFSv3 server over ${label}`, () => {
    let fx: Fixture;
    let alice: RpcClient;
    let bob: RpcClient;
    let a: Nfs;
    let b: Nfs;
    let root: nfs_fh3;
    let n = 0;
    /** A fresh name per use, so tests do not collide in the shared export. */
    const fresh = (prefix = 'f'): string => `${prefix}${++n}`;

    before(async () => {
      fx = await make();
      alice = nfsClient(fx.server.nfsPort, ALICE);
      bob = nfsClient(fx.server.nfsPort, BOB);
      a = new Nfs(alice);
      b = new Nfs(bob);
      root = await mount(alice, fx.exportPath);
    });
    after(async () => {
      alice.close();
      bob.close();
      await fx.cleanup();
    });

    test('MOUNT: NULL, MNT, DUMP, UMNT, UMNTALL, EXPORT', async () => {
      await mountCall(alice, 'NULL', undefined);
      const r = await mountCall(alice, 'MNT', fx.exportPath);
      assert.equal(r.fhs_status, mountstat3.MNT3_OK);
      assert.ok(r.fhs_status === 0 && r.mountinfo.auth_flavors.includes(1), 'AUTH_SYS offered');
      assert.ok(r.fhs_status === 0 && r.mountinfo.fhandle.equals(root.data), 'the same root handle every time');
      const dump = await mountCall(alice, 'DUMP', undefined);
      assert.ok(dump.some((m) => m.ml_directory === fx.exportPath && m.ml_hostname === '127.0.0.1'), JSON.stringify(dump));
      const exports = await mountCall(alice, 'EXPORT', undefined);
      assert.ok(exports.some((e) => e.ex_dir === fx.exportPath && e.ex_groups.length > 0), JSON.stringify(exports));
      await mountCall(alice, 'UMNT', fx.exportPath);
      assert.ok(!(await mountCall(alice, 'DUMP', undefined)).some((m) => m.ml_directory === fx.exportPath));
      await mountCall(alice, 'MNT', fx.exportPath);
      await mountCall(alice, 'UMNTALL', undefined);
      assert.deepEqual(await mountCall(alice, 'DUMP', undefined), []);
    });

    test('MNT: a subdirectory, a missing path, a file, a path outside every export', async () => {
      const dir = fresh('sub');
      const d = await a.mkdir(root, dir);
      const f = await a.create(d, 'file');
      const sub = await mount(alice, `${fx.exportPath}/${dir}`);
      assert.equal((await a.getattr(sub)).fileid, (await a.getattr(d)).fileid);
      // `..` of a mounted subdirectory is inside the export.
      assert.equal((await a.getattr(await a.lookup(sub, '..'))).fileid, (await a.getattr(root)).fileid);
      assert.equal((await mountCall(alice, 'MNT', `${fx.exportPath}/${dir}/missing`)).fhs_status, mountstat3.MNT3ERR_NOENT);
      assert.equal((await mountCall(alice, 'MNT', `${fx.exportPath}/${dir}/file`)).fhs_status, mountstat3.MNT3ERR_NOTDIR);
      assert.equal((await mountCall(alice, 'MNT', '/no/such/export')).fhs_status, mountstat3.MNT3ERR_NOENT);
      assert.equal((await mountCall(alice, 'MNT', `${fx.exportPath}/../..`)).fhs_status, mountstat3.MNT3ERR_NOENT);
      assert.equal((await mountCall(alice, 'MNT', 'relative')).fhs_status, mountstat3.MNT3ERR_NOENT);
      // Symbolic links are followed while they stay inside the export (relative, or absolute in the export's path).
      const link = (name: string, target: string) => a.call('SYMLINK', { where: { dir: root, name }, symlink: { symlink_attributes: sattr(), symlink_data: target } }).then(ok);
      await link(`${dir}-rel`, `./${dir}/../${dir}`);
      await link(`${dir}-abs`, `${fx.exportPath}/${dir}`);
      await link(`${dir}-chain`, `${dir}-rel`);
      for (const name of [`${dir}-rel`, `${dir}-abs`, `${dir}-chain`]) {
        assert.equal((await a.getattr(await mount(alice, `${fx.exportPath}/${name}`))).fileid, (await a.getattr(d)).fileid, name);
      }
      await link(`${dir}-out`, '..');
      await link(`${dir}-etc`, '/etc');
      await link(`${dir}-loop`, `${dir}-loop`);
      await link(`${dir}-file`, `${dir}/file`);
      for (const name of [`${dir}-out`, `${dir}-etc`, `${dir}-loop`]) {
        assert.equal((await mountCall(alice, 'MNT', `${fx.exportPath}/${name}`)).fhs_status, mountstat3.MNT3ERR_NOENT, name);
      }
      assert.equal((await mountCall(alice, 'MNT', `${fx.exportPath}/${dir}-file`)).fhs_status, mountstat3.MNT3ERR_NOTDIR);
      void f;
    });

    test('all 22 procedures, with wcc_data on every change', async () => {
      await nfsCall(alice, 'NULL', undefined);
      const rootAttrs = await a.getattr(root);
      assert.equal(rootAttrs.type, 2);

      // CREATE, LOOKUP, GETATTR
      const dir = await a.mkdir(root, fresh('all'));
      const c = ok(await a.call('CREATE', { where: { dir, name: 'file' }, how: { mode: 0, obj_attributes: sattr({ mode: 0o640 }) } }));
      assert.ok(c.obj && c.obj_attributes, 'CREATE returns handle and attributes');
      assert.equal(c.obj_attributes.mode, 0o640);
      assert.equal(c.obj_attributes.uid, ALICE.uid);
      assert.ok(c.dir_wcc.before && c.dir_wcc.after, 'CREATE dir_wcc');
      const file = c.obj;
      const l = ok(await a.call('LOOKUP', { what: { dir, name: 'file' } }));
      assert.deepEqual(l.object.data, file.data);
      assert.ok(l.obj_attributes && l.dir_attributes);

      // WRITE, COMMIT, READ
      const data = crypto.randomBytes(10_000);
      const w = await a.write(file, 0n, data, 0);
      assert.equal(w.count, data.length);
      assert.equal(w.committed, so.committed(0));
      assert.equal(w.verf.length, 8);
      assert.ok(w.file_wcc.before && w.file_wcc.after, 'WRITE file_wcc');
      assert.equal(w.file_wcc.before.size, 0n);
      assert.equal(w.file_wcc.after.size, 10_000n);
      const cm = ok(await a.call('COMMIT', { file, offset: 0n, count: 0 }));
      assert.deepEqual(cm.verf, w.verf, 'COMMIT returns the write verifier');
      assert.ok(cm.file_wcc.after);
      const rd = await a.read(file, 0n, 20_000);
      assert.equal(rd.count, data.length);
      assert.ok(rd.eof);
      assert.deepEqual(rd.data, data);
      const mid = await a.read(file, 100n, 50);
      assert.deepEqual(mid.data, data.subarray(100, 150));
      assert.equal(mid.eof, false);

      // SETATTR
      const sa = ok(await a.call('SETATTR', { object: file, new_attributes: sattr({ size: 5n, mode: 0o600 }), guard: undefined }));
      assert.ok(sa.obj_wcc.before && sa.obj_wcc.after, 'SETATTR obj_wcc');
      assert.equal(sa.obj_wcc.before.size, 10_000n);
      assert.equal(sa.obj_wcc.after.size, 5n);
      assert.equal(sa.obj_wcc.after.mode, 0o600);
      // Microsecond-aligned: LocalBackend sets times through utimes (libuv keeps microseconds).
      const mt = { seconds: 1_000_000, nseconds: 5000 };
      const st = ok(await a.call('SETATTR', { object: file, new_attributes: sattr({ mtime: mt, atime: mt }), guard: undefined }));
      assert.deepEqual(st.obj_wcc.after!.mtime, mt);

      // ACCESS
      const acc = ok(await a.call('ACCESS', { object: file, access: ALL_ACCESS }));
      assert.equal(acc.access & (ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND), ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND);
      assert.ok(acc.obj_attributes);

      // SYMLINK, READLINK
      const sl = ok(await a.call('SYMLINK', { where: { dir, name: 'link' }, symlink: { symlink_attributes: sattr(), symlink_data: 'file' } }));
      assert.ok(sl.obj && sl.dir_wcc.after);
      assert.equal(sl.obj_attributes!.type, 5);
      const rl = ok(await a.call('READLINK', { symlink: sl.obj }));
      assert.equal(rl.data, 'file');

      // MKNOD (a FIFO), and a type MKNOD does not make
      const mk = ok(await a.call('MKNOD', { where: { dir, name: 'fifo' }, what: { type: 7, pipe_attributes: sattr({ mode: 0o600 }) } }));
      assert.equal(mk.obj_attributes!.type, 7);
      assert.ok(mk.dir_wcc.before && mk.dir_wcc.after);
      expectStatus(await a.call('MKNOD', { where: { dir, name: 'reg' }, what: { type: 1 } }), 'NFS3ERR_BADTYPE');

      // LINK
      const ln = ok(await a.call('LINK', { file, link: { dir, name: 'hard' } }));
      assert.equal(ln.file_attributes!.nlink, 2);
      assert.ok(ln.linkdir_wcc.before && ln.linkdir_wcc.after);

      // RENAME
      const sub = await a.mkdir(dir, 'sub');
      const rn = ok(await a.call('RENAME', { from: { dir, name: 'hard' }, to: { dir: sub, name: 'moved' } }));
      assert.ok(rn.fromdir_wcc.before && rn.fromdir_wcc.after && rn.todir_wcc.before && rn.todir_wcc.after);
      assert.deepEqual((await a.getattr(await a.lookup(sub, 'moved'))).fileid, c.obj_attributes.fileid);

      // READDIR, READDIRPLUS
      const names = (await a.readdirAll(dir)).map((e) => e.name).sort();
      assert.deepEqual(names, ['.', '..', 'fifo', 'file', 'link', 'sub']);
      const rp = ok(await a.call('READDIRPLUS', { dir, cookie: 0n, cookieverf: Buffer.alloc(8), dircount: 4096, maxcount: 32768 }));
      assert.ok(rp.reply.eof);
      for (const e of rp.reply.entries) {
        assert.ok(e.name_attributes && e.name_handle, `READDIRPLUS entry ${e.name} carries attributes and a handle`);
        assert.equal(e.name_attributes.fileid, e.fileid);
        assert.equal((await a.getattr(e.name_handle)).fileid, e.fileid);
      }

      // REMOVE, RMDIR
      const rm = ok(await a.call('REMOVE', { object: { dir: sub, name: 'moved' } }));
      assert.ok(rm.dir_wcc.before && rm.dir_wcc.after);
      const rd2 = ok(await a.call('RMDIR', { object: { dir, name: 'sub' } }));
      assert.ok(rd2.dir_wcc.before && rd2.dir_wcc.after);

      // FSSTAT, FSINFO, PATHCONF
      const fs = ok(await a.call('FSSTAT', { fsroot: root }));
      assert.ok(fs.tbytes >= fs.fbytes && fs.fbytes >= fs.abytes && fs.obj_attributes);
      const fi = ok(await a.call('FSINFO', { fsroot: root }));
      assert.equal(fi.rtmax, MiB);
      assert.equal(fi.wtmax, MiB);
      assert.ok(fi.rtpref >= 64 * 1024 && fi.rtpref <= MiB && fi.wtpref >= 64 * 1024 && fi.wtpref <= MiB);
      assert.equal(fi.rtmult, 4096);
      assert.equal(fi.wtmult, 4096);
      assert.equal(fi.dtpref, 64 * 1024);
      assert.ok(fi.maxfilesize > 0n);
      assert.deepEqual(fi.time_delta, { seconds: 0, nseconds: 1 });
      assert.equal(fi.properties, FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME);
      const pc = ok(await a.call('PATHCONF', { object: root }));
      assert.equal(pc.name_max, 255);
      assert.equal(pc.no_trunc, true);
      assert.ok(pc.linkmax > 1);
    });

    test('forged and altered handles: BADHANDLE or STALE, never resolved', async () => {
      const f = await a.create(root, fresh());
      for (const bytes of [crypto.randomBytes(64), crypto.randomBytes(10), Buffer.alloc(0), crypto.randomBytes(40)]) {
        const r = await a.call('GETATTR', { object: fh(bytes) });
        expectStatus(r, bytes.length === 40 ? ['NFS3ERR_BADHANDLE', 'NFS3ERR_STALE'] : 'NFS3ERR_BADHANDLE', `random ${bytes.length} bytes`);
      }
      expectStatus(await a.call('GETATTR', { object: fh(crypto.randomBytes(64)) }), 'NFS3ERR_BADHANDLE');
      for (let i = 0; i < f.data.length; i++) {
        const bad = Buffer.from(f.data);
        bad[i]! ^= 1 << (i % 8);
        expectStatus(await a.call('GETATTR', { object: fh(bad) }), ['NFS3ERR_BADHANDLE', 'NFS3ERR_STALE'], `bit flip in byte ${i}`);
      }
      // A handle with its tag recomputed by someone without the secret is stale.
      const forged = Buffer.from(f.data);
      crypto.randomBytes(16).copy(forged, forged.length - 16);
      expectStatus(await a.call('READ', { file: fh(forged), offset: 0n, count: 10 }), 'NFS3ERR_STALE');
      // Directory procedures refuse bad handles the same way.
      expectStatus(await a.call('LOOKUP', { what: { dir: fh(crypto.randomBytes(64)), name: 'x' } }), 'NFS3ERR_BADHANDLE');
      expectStatus(await a.call('CREATE', { where: { dir: fh(forged), name: 'x' }, how: { mode: 0, obj_attributes: sattr() } }), 'NFS3ERR_STALE');
    });

    test('a deleted object is STALE', async () => {
      const name = fresh();
      const f = await a.create(root, name);
      const d = await a.mkdir(root, fresh('d'));
      ok(await a.call('REMOVE', { object: { dir: root, name } }));
      expectStatus(await a.call('GETATTR', { object: f }), 'NFS3ERR_STALE');
      expectStatus(await a.call('READ', { file: f, offset: 0n, count: 1 }), 'NFS3ERR_STALE');
      expectStatus(await a.call('WRITE', { file: f, offset: 0n, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_STALE');
      ok(await a.call('RMDIR', { object: { dir: root, name: (await nameOf(a, root, d))! } }));
      expectStatus(await a.call('READDIR', { dir: d, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_STALE');
      expectStatus(await a.call('LOOKUP', { what: { dir: d, name: 'x' } }), 'NFS3ERR_STALE');
    });

    test('a handle stays valid after its parent directory is renamed', async () => {
      const from = fresh('dir');
      const to = fresh('renamed');
      const d = await a.mkdir(root, from);
      const f = await a.create(d, 'inner');
      await a.write(f, 0n, Buffer.from('still here'));
      ok(await a.call('RENAME', { from: { dir: root, name: from }, to: { dir: root, name: to } }));
      assert.equal((await a.read(f, 0n, 100)).data.toString(), 'still here');
      assert.ok((await a.getattr(d)).type === 2);
      const again = await a.lookup(await a.lookup(root, to), 'inner');
      assert.equal((await a.getattr(again)).fileid, (await a.getattr(f)).fileid);
      expectStatus(await a.call('LOOKUP', { what: { dir: root, name: from } }), 'NFS3ERR_NOENT');
    });

    test('`..` at the export root is the root; `.` is the directory', async () => {
      const up = ok(await a.call('LOOKUP', { what: { dir: root, name: '..' } }));
      assert.deepEqual(up.object.data, root.data);
      const dot = ok(await a.call('LOOKUP', { what: { dir: root, name: '.' } }));
      assert.deepEqual(dot.object.data, root.data);
      const d = await a.mkdir(root, fresh('d'));
      const parent = ok(await a.call('LOOKUP', { what: { dir: d, name: '..' } }));
      assert.deepEqual(parent.object.data, root.data);
    });

    test('names: `/`, NUL, empty, 255 and 256 bytes', async () => {
      for (const name of ['a/b', 'a\0b', '', '/']) {
        for (const r of [
          await a.call('LOOKUP', { what: { dir: root, name } }),
          await a.call('CREATE', { where: { dir: root, name }, how: { mode: 0, obj_attributes: sattr() } }),
          await a.call('MKDIR', { where: { dir: root, name }, attributes: sattr() }),
          await a.call('REMOVE', { object: { dir: root, name } }),
        ]) {
          expectStatus(r, ['NFS3ERR_INVAL', 'NFS3ERR_ACCES'], JSON.stringify(name));
        }
      }
      const long = 'x'.repeat(256);
      expectStatus(await a.call('CREATE', { where: { dir: root, name: long }, how: { mode: 0, obj_attributes: sattr() } }), 'NFS3ERR_NAMETOOLONG');
      expectStatus(await a.call('LOOKUP', { what: { dir: root, name: long } }), 'NFS3ERR_NAMETOOLONG');
      expectStatus(await a.call('LOOKUP', { what: { dir: root, name: 'é'.repeat(128) } }), 'NFS3ERR_NAMETOOLONG', '256 bytes in 128 characters');
      const max = 'y'.repeat(250) + String(++n).padStart(5, '0');
      await a.create(root, max);
      await a.lookup(root, max);
      const f = await a.create(root, fresh());
      expectStatus(await a.call('RENAME', { from: { dir: root, name: 'nope/x' }, to: { dir: root, name: 'y' } }), ['NFS3ERR_INVAL', 'NFS3ERR_ACCES']);
      expectStatus(await a.call('LINK', { file: f, link: { dir: root, name: long } }), 'NFS3ERR_NAMETOOLONG');
      expectStatus(await a.call('SYMLINK', { where: { dir: root, name: 'a\0' }, symlink: { symlink_attributes: sattr(), symlink_data: 'x' } }), ['NFS3ERR_INVAL', 'NFS3ERR_ACCES']);
    });

    test('names are bytes: names that are not UTF-8 are made, listed, renamed, linked and removed as sent', async () => {
      const bytes = (latin1: string): string => decodeBytes(Buffer.from(latin1, 'latin1'));
      const d = await a.mkdir(root, fresh('bytes'));
      // Latin-1 "café" and "cafè": two names, two files.
      const e9 = await a.create(d, bytes('caf\xe9'));
      const e8 = await a.create(d, bytes('caf\xe8'));
      assert.notEqual((await a.getattr(e9)).fileid, (await a.getattr(e8)).fileid);
      await a.write(e9, 0n, Buffer.from('nine'));
      assert.equal((await a.read(await a.lookup(d, bytes('caf\xe9')), 0n, 100)).data.toString(), 'nine');
      // A directory with such a name, and a file in it (handles resolve through both).
      const sub = await a.mkdir(d, bytes('dir\xff'));
      const inner = await a.create(sub, bytes('\xfe'));
      await a.write(inner, 0n, Buffer.from('inner'));
      assert.deepEqual((await a.readdirAll(d)).map((e) => e.name).sort(), ['.', '..', bytes('caf\xe8'), bytes('caf\xe9'), bytes('dir\xff')].sort());
      ok(await a.call('RENAME', { from: { dir: d, name: bytes('caf\xe9') }, to: { dir: sub, name: bytes('ren\xe9') } }));
      expectStatus(await a.call('LOOKUP', { what: { dir: d, name: bytes('caf\xe9') } }), 'NFS3ERR_NOENT');
      assert.equal((await a.read(await a.lookup(sub, bytes('ren\xe9')), 0n, 100)).data.toString(), 'nine');
      ok(await a.call('LINK', { file: e8, link: { dir: sub, name: bytes('lnk\xe8') } }));
      assert.equal((await a.getattr(await a.lookup(sub, bytes('lnk\xe8')))).fileid, (await a.getattr(e8)).fileid);
      assert.equal((await a.read(inner, 0n, 100)).data.toString(), 'inner');
      for (const name of [bytes('\xfe'), bytes('ren\xe9'), bytes('lnk\xe8')]) ok(await a.call('REMOVE', { object: { dir: sub, name } }));
      ok(await a.call('RMDIR', { object: { dir: d, name: bytes('dir\xff') } }));
      ok(await a.call('REMOVE', { object: { dir: d, name: bytes('caf\xe8') } }));
      assert.deepEqual((await a.readdirAll(d)).map((e) => e.name).sort(), ['.', '..']);
      // A symlink's target is bytes too.
      const target = bytes('../caf\xe9/\xff');
      const sl = ok(await a.call('SYMLINK', { where: { dir: d, name: 'link' }, symlink: { symlink_attributes: sattr(), symlink_data: target } }));
      assert.equal(sl.obj_attributes!.size, 9n, 'the 9 bytes sent, not replacement characters');
      assert.equal(ok(await a.call('READLINK', { symlink: sl.obj! })).data, target);
    });

    test('READ and WRITE at the limits', async () => {
      const f = await a.create(root, fresh('big'));
      const big = crypto.randomBytes(MiB + 4096);
      // More than wtmax is a short write of wtmax, as Linux's nfsd does.
      const w = await a.write(f, 0n, big, 2);
      assert.equal(w.count, MiB);
      await a.write(f, BigInt(MiB), big.subarray(MiB), 2);
      // More than rtmax is clamped: RFC 1813 lets READ return less.
      const r = await a.read(f, 0n, 2 * MiB);
      assert.equal(r.count, MiB);
      assert.equal(r.eof, false);
      assert.ok(r.data.equals(big.subarray(0, MiB)));
      const all = await a.read(f, 0n, 0xffff_ffff);
      assert.equal(all.count, MiB);
      const tail = await a.read(f, BigInt(MiB), MiB);
      assert.equal(tail.count, 4096);
      assert.equal(tail.eof, true);
      // Past the end, and at or past 2^63.
      const past = await a.read(f, 10n * BigInt(MiB), 10);
      assert.equal(past.count, 0);
      assert.equal(past.eof, true);
      for (const offset of [OFFSET_2_63, OFFSET_2_63 - 1n, (1n << 64n) - 1n]) {
        const p = await a.read(f, offset, 100);
        assert.equal(p.count, 0);
        assert.equal(p.eof, true);
      }
      expectStatus(await a.call('WRITE', { file: f, offset: OFFSET_2_63, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_FBIG');
      expectStatus(await a.call('WRITE', { file: f, offset: (1n << 64n) - 1n, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_FBIG');
      const fbig = await a.call('WRITE', { file: f, offset: OFFSET_2_63 - 1n, count: 2, stable: 2, data: Buffer.from('xy') });
      expectStatus(fbig, 'NFS3ERR_FBIG');
      assert.ok(fbig.status !== 0 && fbig.resfail.file_wcc.after, 'wcc_data on a failed WRITE');
      expectStatus(await a.call('COMMIT', { file: f, offset: OFFSET_2_63, count: 0 }), 'NFS3ERR_INVAL');
      // count must match the data: GARBAGE_ARGS, as Linux's decoder.
      await assert.rejects(a.call('WRITE', { file: f, offset: 0n, count: 10, stable: 2, data: Buffer.from('short') }), RpcGarbageArgsError);
      // A zero-length write is fine.
      assert.equal((await a.write(f, 0n, Buffer.alloc(0))).count, 0);
      // READ and WRITE of a directory.
      expectStatus(await a.call('READ', { file: root, offset: 0n, count: 10 }), ['NFS3ERR_ISDIR', 'NFS3ERR_INVAL']);
      expectStatus(await a.call('WRITE', { file: root, offset: 0n, count: 1, stable: 2, data: Buffer.from('x') }), ['NFS3ERR_ISDIR', 'NFS3ERR_INVAL']);
    });

    test('UNSTABLE, DATA_SYNC and FILE_SYNC writes report what the backend committed', async () => {
      const f = await a.create(root, fresh());
      const verfs = new Set<string>();
      for (const stable of [0, 1, 2] as const) {
        const w = await a.write(f, BigInt(stable * 10), Buffer.from('0123456789'), stable);
        assert.equal(w.committed, so.committed(stable), `stable ${stable}`);
        assert.ok(w.committed >= stable, 'never less durable than asked');
        verfs.add(w.verf.toString('hex'));
      }
      verfs.add(ok(await a.call('COMMIT', { file: f, offset: 0n, count: 0 })).verf.toString('hex'));
      assert.equal(verfs.size, 1, 'one write verifier while the server runs');
      assert.equal([...verfs][0], fx.server.state.writeVerifier.toString('hex'));
    });

    test('READDIR: 3,000 entries paged completely, no duplicates; READDIRPLUS too', async () => {
      const d = await a.mkdir(root, fresh('many'));
      const want = Array.from({ length: 3000 }, (_, i) => `entry-${i}-${'z'.repeat(i % 40)}`);
      for (let i = 0; i < want.length; i += 250) {
        await Promise.all(want.slice(i, i + 250).map((name) => a.create(d, name)));
      }
      const entries = await a.readdirAll(d, 4096);
      const names = entries.map((e) => e.name);
      assert.equal(new Set(names).size, names.length, 'no duplicates');
      assert.deepEqual(names.filter((x) => x !== '.' && x !== '..').sort(), [...want].sort());
      assert.ok(names.includes('.') && names.includes('..'));
      assert.equal(new Set(entries.map((e) => e.cookie)).size, entries.length, 'cookies are unique');

      // READDIRPLUS pages with handles and attributes.
      const seen = new Set<string>();
      let cookie = 0n;
      let verf: Buffer = Buffer.alloc(8);
      for (;;) {
        const r = ok(await a.call('READDIRPLUS', { dir: d, cookie, cookieverf: verf, dircount: 1024, maxcount: 16384 }));
        for (const e of r.reply.entries) {
          assert.ok(!seen.has(e.name), `duplicate ${e.name}`);
          seen.add(e.name);
          assert.ok(e.name_handle && e.name_attributes);
        }
        if (r.reply.eof) break;
        cookie = r.reply.entries.at(-1)!.cookie;
        verf = r.cookieverf;
      }
      assert.equal(seen.size, 3002);
      // A page must fit the count asked for.
      const small = ok(await a.call('READDIR', { dir: d, cookie: 0n, cookieverf: Buffer.alloc(8), count: 1024 }));
      assert.ok(small.reply.entries.length > 0 && small.reply.entries.length < 60);
    });

    test('READDIR: bad cookie, a too small count, stale and zero cookie verifiers', async () => {
      const d = await a.mkdir(root, fresh('rd'));
      for (let i = 0; i < 20; i++) await a.create(d, `n${i}`);
      expectStatus(await a.call('READDIR', { dir: d, cookie: 0x1234_5678_9abcn, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_BAD_COOKIE');
      const plusBad = await a.call('READDIRPLUS', { dir: d, cookie: 0x7777_7777n, cookieverf: Buffer.alloc(8), dircount: 4096, maxcount: 8192 });
      expectStatus(plusBad, 'NFS3ERR_BAD_COOKIE');
      assert.ok(plusBad.status !== 0 && plusBad.resfail.dir_attributes, 'dir attributes on failure');
      expectStatus(await a.call('READDIR', { dir: d, cookie: 0n, cookieverf: Buffer.alloc(8), count: 8 }), 'NFS3ERR_TOOSMALL');
      // Page 1, then change the directory, then continue with the old verifier: accepted (Linux-style).
      const p1 = ok(await a.call('READDIR', { dir: d, cookie: 0n, cookieverf: Buffer.alloc(8), count: 300 }));
      assert.equal(p1.reply.eof, false);
      await a.create(d, 'added-later');
      const last = p1.reply.entries.at(-1)!.cookie;
      ok(await a.call('READDIR', { dir: d, cookie: last, cookieverf: p1.cookieverf, count: 4096 }), 'stale verifier');
      ok(await a.call('READDIR', { dir: d, cookie: last, cookieverf: Buffer.alloc(8), count: 4096 }), 'zero verifier');
      ok(await a.call('READDIR', { dir: d, cookie: last, cookieverf: crypto.randomBytes(8), count: 4096 }), 'any verifier');
      expectStatus(await a.call('READDIR', { dir: await a.create(d, 'plainfile'), cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_NOTDIR');
    });

    test('CREATE: exclusive retransmit succeeds, another verifier is EXIST; GUARDED is EXIST', async () => {
      const name = fresh('excl');
      const verf = crypto.randomBytes(8);
      const how = { mode: 2 as const, verf };
      const first = ok(await a.call('CREATE', { where: { dir: root, name }, how }));
      const again = ok(await a.call('CREATE', { where: { dir: root, name }, how }), 'same verifier');
      assert.equal(again.obj_attributes!.fileid, first.obj_attributes!.fileid);
      assert.deepEqual(again.obj!.data, first.obj!.data);
      expectStatus(await a.call('CREATE', { where: { dir: root, name }, how: { mode: 2, verf: crypto.randomBytes(8) } }), 'NFS3ERR_EXIST');
      const g = await a.call('CREATE', { where: { dir: root, name }, how: { mode: 1, obj_attributes: sattr() } });
      expectStatus(g, 'NFS3ERR_EXIST');
      assert.ok(g.status !== 0 && g.resfail.dir_wcc.after, 'dir wcc on a failed CREATE');
      ok(await a.call('CREATE', { where: { dir: root, name }, how: { mode: 0, obj_attributes: sattr() } }), 'UNCHECKED on an existing file');
      expectStatus(await a.call('MKDIR', { where: { dir: root, name }, attributes: sattr() }), 'NFS3ERR_EXIST');
    });

    test('a retransmitted REMOVE (same xid) is answered from the duplicate request cache', async () => {
      const name = fresh('drc');
      await a.create(root, name);
      const args = encodeNfsArgs('REMOVE', { object: { dir: root, name } });
      const raw = await rawConnect(fx.server.nfsPort);
      try {
        const record = callRecord({ xid: 0x5eed_0001, prog: 100003, vers: 3, proc: args.proc, credFlavor: 1, credBody: authSysBody(ALICE), args: args.bytes });
        raw.socket.write(record);
        const first = await raw.next();
        raw.socket.write(record);
        const second = await raw.next();
        assert.deepEqual(second, first, 'the same reply, byte for byte');
        const res = decodeNfsRes('REMOVE', parseReply(second).body);
        assert.equal(res.status, 0, 'NFS3_OK twice, not NOENT');
        // A new xid runs the call again.
        raw.socket.write(callRecord({ xid: 0x5eed_0002, prog: 100003, vers: 3, proc: args.proc, credFlavor: 1, credBody: authSysBody(ALICE), args: args.bytes }));
        expectStatus(decodeNfsRes('REMOVE', parseReply(await raw.next()).body), 'NFS3ERR_NOENT');
      } finally {
        raw.socket.destroy();
      }
      assert.ok(fx.server.drc!.counters.hits >= 1);
    });

    test('SETATTR guard: NOT_SYNC on a mismatch, OK on a match', async () => {
      const f = await a.create(root, fresh());
      const attrs = await a.getattr(f);
      const wrong = { seconds: attrs.ctime.seconds + 1, nseconds: attrs.ctime.nseconds };
      const bad = await a.call('SETATTR', { object: f, new_attributes: sattr({ mode: 0o600 }), guard: wrong });
      expectStatus(bad, 'NFS3ERR_NOT_SYNC');
      assert.ok(bad.status !== 0 && bad.resfail.obj_wcc.after, 'wcc on NOT_SYNC');
      assert.equal((await a.getattr(f)).mode, 0o644, 'nothing changed');
      ok(await a.call('SETATTR', { object: f, new_attributes: sattr({ mode: 0o600 }), guard: attrs.ctime }));
      assert.equal((await a.getattr(f)).mode, 0o600);
    });

    test('ACCESS agrees with what the operations then allow', async () => {
      const d = await a.mkdir(root, fresh('acc'), 0o755);
      const f = await a.create(d, 'mine', 0o644);
      await a.write(f, 0n, Buffer.from('data'));
      // Bob: read only.
      const bf = ok(await b.call('ACCESS', { object: f, access: ALL_ACCESS }));
      assert.equal(bf.access & (ACCESS3_READ | WRITE_BITS), ACCESS3_READ);
      assert.equal(bf.access & ACCESS3_EXECUTE, 0);
      assert.equal((await b.read(f, 0n, 10)).data.toString(), 'data');
      expectStatus(await b.call('WRITE', { file: f, offset: 0n, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_ACCES');
      expectStatus(await b.call('SETATTR', { object: f, new_attributes: sattr({ mode: 0o666 }), guard: undefined }), 'NFS3ERR_PERM');
      const bd = ok(await b.call('ACCESS', { object: d, access: ALL_ACCESS }));
      assert.equal(bd.access & (ACCESS3_LOOKUP | ACCESS3_READ), ACCESS3_LOOKUP | ACCESS3_READ);
      assert.equal(bd.access & WRITE_BITS, 0);
      expectStatus(await b.call('CREATE', { where: { dir: d, name: 'bobs' }, how: { mode: 0, obj_attributes: sattr() } }), 'NFS3ERR_ACCES');
      expectStatus(await b.call('REMOVE', { object: { dir: d, name: 'mine' } }), 'NFS3ERR_ACCES');
      // Alice: everything on her own file and directory.
      const af = ok(await a.call('ACCESS', { object: f, access: ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND }));
      assert.equal(af.access, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND);
      await a.write(f, 4n, Buffer.from('more'));
      const ad = ok(await a.call('ACCESS', { object: d, access: ALL_ACCESS }));
      assert.equal(ad.access & (WRITE_BITS | ACCESS3_LOOKUP), WRITE_BITS | ACCESS3_LOOKUP);
      // Only the bits asked for come back.
      assert.equal(ok(await a.call('ACCESS', { object: f, access: ACCESS3_READ })).access, ACCESS3_READ);
      // A directory Bob cannot search.
      const priv = await a.mkdir(root, fresh('priv'), 0o700);
      await a.create(priv, 'secret');
      const bp = ok(await b.call('ACCESS', { object: priv, access: ALL_ACCESS }));
      assert.equal(bp.access, 0);
      expectStatus(await b.call('LOOKUP', { what: { dir: priv, name: 'secret' } }), 'NFS3ERR_ACCES');
      expectStatus(await b.call('READDIR', { dir: priv, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_ACCES');
    });

    test('error paths return what RFC 1813 asks, with attributes', async () => {
      const d = await a.mkdir(root, fresh('err'));
      const miss = await a.call('LOOKUP', { what: { dir: d, name: 'missing' } });
      expectStatus(miss, 'NFS3ERR_NOENT');
      assert.ok(miss.status !== 0 && miss.resfail.dir_attributes, 'dir attributes with NOENT');
      const f = await a.create(d, 'file');
      expectStatus(await a.call('LOOKUP', { what: { dir: f, name: 'x' } }), 'NFS3ERR_NOTDIR');
      expectStatus(await a.call('READLINK', { symlink: f }), 'NFS3ERR_INVAL');
      await a.create(await a.mkdir(d, 'full'), 'x');
      expectStatus(await a.call('RMDIR', { object: { dir: d, name: 'full' } }), 'NFS3ERR_NOTEMPTY');
      expectStatus(await a.call('RMDIR', { object: { dir: d, name: 'file' } }), 'NFS3ERR_NOTDIR');
      expectStatus(await a.call('REMOVE', { object: { dir: d, name: 'missing' } }), 'NFS3ERR_NOENT');
      expectStatus(await a.call('RENAME', { from: { dir: d, name: 'missing' }, to: { dir: d, name: 'x' } }), 'NFS3ERR_NOENT');
      const rn = await a.call('RENAME', { from: { dir: d, name: 'full' }, to: { dir: d, name: 'file' } });
      expectStatus(rn, ['NFS3ERR_NOTDIR', 'NFS3ERR_EXIST']);
      assert.ok(rn.status !== 0 && rn.resfail.fromdir_wcc.after && rn.resfail.todir_wcc.after);
      expectStatus(await a.call('LINK', { file: d, link: { dir: d, name: 'dirlink' } }), ['NFS3ERR_ISDIR', 'NFS3ERR_PERM', 'NFS3ERR_INVAL']);
      expectStatus(await a.call('LINK', { file: f, link: { dir: d, name: 'file' } }), 'NFS3ERR_EXIST');
      expectStatus(await a.call('SETATTR', { object: f, new_attributes: sattr({ uid: 0 }), guard: undefined }), 'NFS3ERR_PERM');
    });

    test('root_squash: uid 0 acts as the anonymous user', async () => {
      const rootClient = nfsClient(fx.server.nfsPort, ROOT);
      try {
        const r = new Nfs(rootClient);
        const c = ok(await r.call('CREATE', { where: { dir: root, name: fresh('squashed') }, how: { mode: 0, obj_attributes: sattr() } }));
        if (so.canChown) {
          assert.equal(c.obj_attributes!.uid, 65534);
          assert.equal(c.obj_attributes!.gid, 65534);
        }
        // And is refused what only root could do.
        const af = await a.create(root, fresh());
        const af2 = await a.mkdir(root, fresh(), 0o700);
        // (Unless Alice is the anonymous user herself: a test run as `nobody`.)
        if (ALICE.uid !== 65534) {
          expectStatus(await r.call('SETATTR', { object: af, new_attributes: sattr({ mode: 0o777 }), guard: undefined }), 'NFS3ERR_PERM');
          expectStatus(await r.call('LOOKUP', { what: { dir: af2, name: 'x' } }), 'NFS3ERR_ACCES');
        }
      } finally {
        rootClient.close();
      }
    });

    test('export rules: ro, no_root_squash, all_squash, clients outside the rules', async () => {
      const as = { user: ALICE };
      await withFixture(make, '*(ro,insecure)', async (f, rootFh, c) => {
        const s = new Nfs(c);
        // A file to work on, made through the server itself before it turns read-only is not
        // possible here: use what every export has, its root.
        const acc = ok(await s.call('ACCESS', { object: rootFh, access: ALL_ACCESS }));
        assert.equal(acc.access & WRITE_BITS, 0, 'ACCESS grants nothing that modifies');
        assert.ok(acc.access & ACCESS3_LOOKUP);
        const sa = await s.call('SETATTR', { object: rootFh, new_attributes: sattr({ mode: 0o755 }), guard: undefined });
        expectStatus(sa, 'NFS3ERR_ROFS');
        assert.ok(sa.status !== 0 && sa.resfail.obj_wcc.after, 'wcc with ROFS');
        const where = { dir: rootFh, name: 'x' };
        expectStatus(await s.call('CREATE', { where, how: { mode: 0, obj_attributes: sattr() } }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('MKDIR', { where, attributes: sattr() }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('SYMLINK', { where, symlink: { symlink_attributes: sattr(), symlink_data: 'y' } }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('MKNOD', { where, what: { type: 7, pipe_attributes: sattr() } }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('REMOVE', { object: where }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('RMDIR', { object: where }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('RENAME', { from: where, to: { dir: rootFh, name: 'y' } }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('LINK', { file: rootFh, link: where }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('WRITE', { file: rootFh, offset: 0n, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_ROFS');
        expectStatus(await s.call('COMMIT', { file: rootFh, offset: 0n, count: 0 }), 'NFS3ERR_ROFS');
        // Reading still works.
        ok(await s.call('READDIR', { dir: rootFh, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }));
        ok(await s.call('FSINFO', { fsroot: rootFh }));
        void f;
      }, as);

      await withFixture(make, '*(rw,insecure,no_root_squash)', async (_f, rootFh, _c, port) => {
        const rc = nfsClient(port, ROOT);
        try {
          const c = ok(await nfsCall(rc, 'CREATE', { where: { dir: rootFh, name: 'byroot' }, how: { mode: 0, obj_attributes: sattr() } }));
          if (so.canChown) assert.equal(c.obj_attributes!.uid, 0);
        } finally {
          rc.close();
        }
      }, as);

      await withFixture(make, '*(rw,insecure,all_squash,anonuid=1234,anongid=4321)', async (_f, rootFh, c) => {
        const r = ok(await nfsCall(c, 'CREATE', { where: { dir: rootFh, name: 'byalice' }, how: { mode: 0, obj_attributes: sattr() } }));
        if (so.canChown) {
          assert.equal(r.obj_attributes!.uid, 1234);
          assert.equal(r.obj_attributes!.gid, 4321);
        }
      }, as);

      // A client the rules do not admit: MNT3ERR_ACCES, and NFS3ERR_ACCES for a handle it got elsewhere.
      await withFixture(make, '10.99.0.0/16(rw)', async (f, _rootFh, c) => {
        const m = await mountCall(c, 'MNT', f.exportPath);
        assert.equal(m.fhs_status, mountstat3.MNT3ERR_ACCES);
        const handle = fh(f.server.exports[0]!.rootHandle);
        expectStatus(await nfsCall(c, 'GETATTR', { object: handle }), 'NFS3ERR_ACCES');
        expectStatus(await nfsCall(c, 'READDIR', { dir: handle, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_ACCES');
        expectStatus(await nfsCall(c, 'CREATE', { where: { dir: handle, name: 'x' }, how: { mode: 0, obj_attributes: sattr() } }), 'NFS3ERR_ACCES');
      }, { ...as, mount: false });

      // `secure`: a source port of 1024 or above is refused; a reserved one (root only) admitted.
      await withFixture(make, '127.0.0.1(rw)', async (f, _rootFh, c, port) => {
        assert.equal((await mountCall(c, 'MNT', f.exportPath)).fhs_status, mountstat3.MNT3ERR_ACCES);
        const handle = fh(f.server.exports[0]!.rootHandle);
        expectStatus(await nfsCall(c, 'GETATTR', { object: handle }), 'NFS3ERR_PERM');
        if (process.getuid?.() === 0) {
          const priv = nfsClient(port, ALICE, { reservedPort: true });
          try {
            const got = await mount(priv, f.exportPath);
            ok(await nfsCall(priv, 'GETATTR', { object: got }));
          } finally {
            priv.close();
          }
        }
      }, { ...as, mount: false });
    });

    test('stats count the calls', async () => {
      await a.getattr(root);
      const snap = fx.server.stats.snapshot();
      const getattr = snap.find((s) => s.program === 'nfs' && s.procedure === 'GETATTR');
      assert.ok(getattr && getattr.count > 0);
      assert.ok(snap.some((s) => s.program === 'mount' && s.procedure === 'MNT'));
    });
  });
}

/** A fixture with the given client rules; `fn` gets the root handle (unless `mount: false`) and an ALICE client. */
async function withFixture(
  make: MakeFixture,
  clients: string,
  fn: (f: Fixture, root: nfs_fh3, c: RpcClient, port: number) => Promise<void>,
  o: { mount?: boolean; user?: AuthSys } = {},
): Promise<void> {
  const f = await make({ clients });
  const c = nfsClient(f.server.nfsPort, o.user ?? DEFAULT_ALICE);
  try {
    const rootFh = o.mount === false ? fh(f.server.exports[0]!.rootHandle) : await mount(c, f.exportPath);
    await fn(f, rootFh, c, f.server.nfsPort);
  } finally {
    c.close();
    await f.cleanup();
  }
}

/** The name under which `child` appears in `dir` (by fileid). */
async function nameOf(s: Nfs, dir: nfs_fh3, child: nfs_fh3): Promise<string | undefined> {
  const id = (await s.getattr(child)).fileid;
  return (await s.readdirAll(dir)).find((e) => e.fileid === id)?.name;
}
