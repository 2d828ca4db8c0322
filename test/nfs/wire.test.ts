// The server's MOUNT and NFSv3 replies, captured on loopback and decoded by
// tshark (the reference dissector): every procedure, success and error
// replies, and no frame malformed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { MemoryBackend } from '../../src/fs/index.js';
import { startServer } from '../../src/server/index.js';
import { analyzeCapture, missingCapture, startCapture } from '../peers/tshark.js';
import { ALICE, Nfs, expectStatus, fh, mount, mountCall, nfsCall, nfsClient, ok, sattr } from '../helpers/nfs.js';

test('tshark decodes every MOUNT and NFSv3 procedure of ours with no malformed frames', { skip: missingCapture() }, async () => {
  const backend = new MemoryBackend({ rootMode: 0o777 });
  const server = await startServer({ nfsPort: 0, portmapPort: 0, dir: '/wire', backend });
  const capture = await startCapture({ ports: [server.nfsPort] });
  const c = nfsClient(server.nfsPort, ALICE);
  try {
    const s = new Nfs(c);
    await mountCall(c, 'NULL', undefined);
    const root = await mount(c, '/wire');
    await mountCall(c, 'DUMP', undefined);
    await mountCall(c, 'EXPORT', undefined);
    await nfsCall(c, 'NULL', undefined);
    await s.getattr(root);
    const f = await s.create(root, 'file');
    ok(await s.call('SETATTR', { object: f, new_attributes: sattr({ mode: 0o600, mtime: 'now' }), guard: undefined }));
    await s.lookup(root, 'file');
    ok(await s.call('ACCESS', { object: f, access: 0x3f }));
    await s.write(f, 0n, crypto.randomBytes(200_000), 0);
    await s.read(f, 0n, 200_000);
    const d = await s.mkdir(root, 'dir');
    const l = ok(await s.call('SYMLINK', { where: { dir: root, name: 'link' }, symlink: { symlink_attributes: sattr(), symlink_data: 'file' } }));
    ok(await s.call('READLINK', { symlink: l.obj! }));
    ok(await s.call('MKNOD', { where: { dir: root, name: 'fifo' }, what: { type: 7, pipe_attributes: sattr() } }));
    ok(await s.call('LINK', { file: f, link: { dir: d, name: 'hard' } }));
    ok(await s.call('RENAME', { from: { dir: d, name: 'hard' }, to: { dir: root, name: 'hard2' } }));
    ok(await s.call('READDIR', { dir: root, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }));
    ok(await s.call('READDIRPLUS', { dir: root, cookie: 0n, cookieverf: Buffer.alloc(8), dircount: 4096, maxcount: 32768 }));
    ok(await s.call('FSSTAT', { fsroot: root }));
    ok(await s.call('FSINFO', { fsroot: root }));
    ok(await s.call('PATHCONF', { object: root }));
    ok(await s.call('COMMIT', { file: f, offset: 0n, count: 0 }));
    ok(await s.call('REMOVE', { object: { dir: root, name: 'hard2' } }));
    ok(await s.call('RMDIR', { object: { dir: root, name: 'dir' } }));
    // Error replies, with and without attributes.
    expectStatus(await s.call('LOOKUP', { what: { dir: root, name: 'missing' } }), 'NFS3ERR_NOENT');
    expectStatus(await s.call('GETATTR', { object: fh(crypto.randomBytes(64)) }), 'NFS3ERR_BADHANDLE');
    expectStatus(await s.call('CREATE', { where: { dir: root, name: 'file' }, how: { mode: 1, obj_attributes: sattr() } }), 'NFS3ERR_EXIST');
    expectStatus(await s.call('WRITE', { file: f, offset: 1n << 63n, count: 1, stable: 2, data: Buffer.from('x') }), 'NFS3ERR_FBIG');
    expectStatus(await s.call('READDIR', { dir: root, cookie: 12345n, cookieverf: Buffer.alloc(8), count: 4096 }), 'NFS3ERR_BAD_COOKIE');
    await mountCall(c, 'UMNT', '/wire');
    await mountCall(c, 'UMNTALL', undefined);
    c.close();

    const a = await analyzeCapture(await capture.stop(), { rpcPorts: [server.nfsPort] });
    assert.deepEqual(a.malformed, []);
    assert.deepEqual(a.rpcErrors, []);
    assert.ok(a.protocols.has('nfs') && a.protocols.has('mount'), [...a.protocols].join(','));
    const nfsProcs = ['NULL', 'GETATTR', 'SETATTR', 'LOOKUP', 'ACCESS', 'READLINK', 'READ', 'WRITE', 'CREATE', 'MKDIR', 'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK', 'READDIR', 'READDIRPLUS', 'FSSTAT', 'FSINFO', 'PATHCONF', 'COMMIT'];
    for (const p of nfsProcs) assert.ok((a.procedures.get(`NFS3 ${p}`)?.replies ?? 0) >= 1, `NFS3 ${p} reply decoded`);
    for (const p of ['NULL', 'MNT', 'DUMP', 'UMNT', 'UMNTALL', 'EXPORT']) assert.ok((a.procedures.get(`MOUNT3 ${p}`)?.replies ?? 0) >= 1, `MOUNT3 ${p} reply decoded`);
  } finally {
    c.close();
    await capture.remove();
    await server.close();
    await backend.close();
  }
});
