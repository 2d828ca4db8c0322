// Export rules through LOCALIO are the RPC path's: root_squash, read-only
// exports, permission checks as the mapped user, SO_PEERCRED against the
// claimed uid, and unexport revoking grants. The server runs here; each
// client is a child process (another process is what makes the grants
// descriptors, and lets the client run as another user).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { nfsstat3 } from '../../src/proto/nfs3.gen.js';
import { ClientChild, dec, isRoot, makeDirs, noFdPassing, type Dirs } from './helpers.js';

const skip = noFdPassing() || (!isRoot ? 'needs root (files of other owners, setpriv)' : false);

interface FhIo {
  transport: string | null;
  status: number;
  count?: number;
  committed?: number;
  data?: { b64: string };
}

describe('LOCALIO and the export rules', { skip, timeout: 120_000 }, () => {
  let d: Dirs;
  let roDir: string;
  let squashDir: string;
  let srv: RunningServer;
  const children: ClientChild[] = [];

  before(async () => {
    d = makeDirs();
    roDir = path.join(d.root, 'ro');
    squashDir = path.join(d.root, 'squash');
    for (const dir of [roDir, squashDir]) {
      fs.mkdirSync(dir);
      fs.chmodSync(dir, 0o777);
    }
    // Root's files in the squashed export: one only root may read, one everyone may read.
    fs.writeFileSync(path.join(squashDir, 'secret.txt'), 'root only', { mode: 0o600 });
    fs.writeFileSync(path.join(squashDir, 'public.txt'), 'everyone reads this', { mode: 0o644 });
    fs.writeFileSync(path.join(squashDir, 'nobodys.txt'), 'nobody owns this', { mode: 0o644 });
    fs.chownSync(path.join(squashDir, 'nobodys.txt'), 65534, 65534);
    fs.writeFileSync(path.join(roDir, 'r.txt'), 'read only export');
    fs.writeFileSync(path.join(d.exp, 'x.txt'), 'no squash here');
    // The registry belongs to nobody: root (the server) reaches it anyway.
    fs.chownSync(d.registry, 65534, 65534);
    const exports = [
      `${squashDir} *(rw,root_squash,insecure)`,
      `${roDir} *(ro,no_root_squash,insecure)`,
      `${d.exp} *(rw,no_root_squash,insecure)`,
    ].join('\n');
    fs.writeFileSync(path.join(d.root, 'exports'), exports + '\n');
    srv = await startServer({ exportsFile: path.join(d.root, 'exports'), nfsPort: 0, portmapPort: 0, stateDir: d.state, localioRegistry: d.registry });
  });

  after(async () => {
    await Promise.all(children.map((c) => c.exit()));
    await srv?.close();
    d?.cleanup();
  });

  async function client(dir: string, opts: Record<string, unknown> = {}, who: { uid?: number; gid?: number } = {}): Promise<ClientChild> {
    const c = new ClientChild(who);
    children.push(c);
    await c.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: dir, localioRegistry: d.registry, ...opts } });
    return c;
  }

  test('root_squash applies to a root client through LOCALIO as over RPC', async () => {
    const lio = await client(squashDir);
    const rpc = await client(squashDir, { localio: false });
    assert.equal(await lio.do({ op: 'ready', timeoutMs: 5000 }), true);
    const refusalsBefore = srv.localio!.stats().refusals['NFS3ERR_ACCES'] ?? 0;
    for (const c of [lio, rpc]) {
      // Root's 0600 file: squashed root (nobody) may not read it.
      const r = await c.do<FhIo>({ op: 'fhio', name: 'secret.txt', kind: 'read' });
      assert.equal(r.status, nfsstat3.NFS3ERR_ACCES);
      // Root's 0644 file: readable, not writable.
      const pr = await c.do<FhIo>({ op: 'fhio', name: 'public.txt', kind: 'read' });
      assert.equal(pr.status, 0);
      assert.equal(dec(pr.data).toString(), 'everyone reads this');
      const pw = await c.do<FhIo>({ op: 'fhio', name: 'public.txt', kind: 'write', data: { b64: Buffer.from('no').toString('base64') } });
      assert.equal(pw.status, nfsstat3.NFS3ERR_ACCES);
      // nobody's file: the squashed root may write it.
      const nw = await c.do<FhIo>({ op: 'fhio', name: 'nobodys.txt', kind: 'write', data: { b64: Buffer.from('NOBODY').toString('base64') } });
      assert.equal(nw.status, 0);
    }
    assert.equal(fs.readFileSync(path.join(squashDir, 'public.txt'), 'utf8'), 'everyone reads this');
    assert.equal(fs.readFileSync(path.join(squashDir, 'nobodys.txt'), 'utf8').slice(0, 6), 'NOBODY');
    // Files the squashed root makes belong to nobody.
    await lio.call('writeFile', 'made.txt', Buffer.from('made'));
    assert.equal(fs.statSync(path.join(squashDir, 'made.txt')).uid, 65534);
    const s = (await lio.stats()).localio;
    assert.equal(s.state, 'local');
    assert.ok(s.grants >= 2, 'a read-only grant for public.txt and a read-write one for nobodys.txt');
    assert.ok(s.grantRefusals >= 2, 'secret.txt (read) and public.txt (write) were refused');
    assert.ok(s.reads >= 1 && s.writes >= 1);
    assert.ok((srv.localio!.stats().refusals['NFS3ERR_ACCES'] ?? 0) >= refusalsBefore + 2);
  });

  test('a read-only export grants no read-write descriptor', async () => {
    const c = await client(roDir);
    assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
    const rwBefore = srv.localio!.stats().grantsReadWrite;
    const r = await c.do<FhIo>({ op: 'fhio', name: 'r.txt', kind: 'read' });
    assert.equal(r.status, 0);
    assert.equal(r.transport, 'localio');
    assert.equal(dec(r.data).toString(), 'read only export');
    const w = await c.do<FhIo>({ op: 'fhio', name: 'r.txt', kind: 'write', data: { b64: Buffer.from('x').toString('base64') } });
    assert.equal(w.status, nfsstat3.NFS3ERR_ROFS);
    const cm = await c.do<FhIo>({ op: 'fhio', name: 'r.txt', kind: 'commit' });
    assert.equal(cm.status, nfsstat3.NFS3ERR_ROFS);
    assert.equal(srv.localio!.stats().grantsReadWrite, rwBefore);
    assert.ok((srv.localio!.stats().refusals['NFS3ERR_ROFS'] ?? 0) >= 1);
    const s = (await c.stats()).localio;
    assert.equal(s.reads, 1);
    assert.equal(s.writes, 0);
    assert.equal(fs.readFileSync(path.join(roDir, 'r.txt'), 'utf8'), 'read only export');
  });

  test('a process that is not root cannot claim uid 0 through the channel', async () => {
    const liar = await client(d.exp, { uid: 0, gid: 0 }, { uid: 65534, gid: 65534 });
    assert.deepEqual(((await liar.do({ op: 'whoami' })) as { uid: number }).uid, 65534);
    assert.equal(await liar.do({ op: 'ready', timeoutMs: 5000 }), true, 'the channel itself is fine: it is the same host');
    const before = srv.localio!.stats();
    const r = await liar.do<FhIo>({ op: 'fhio', name: 'x.txt', kind: 'read' });
    // NFS believes AUTH_SYS (that is NFS); LOCALIO does not hand it a descriptor.
    assert.equal(r.status, 0);
    assert.equal(dec(r.data).toString(), 'no squash here');
    const after = srv.localio!.stats();
    assert.equal(after.peerCredRefusals, before.peerCredRefusals + 1);
    assert.equal(after.grants, before.grants);
    assert.equal((after.refusals['NFS3ERR_PERM'] ?? 0) - (before.refusals['NFS3ERR_PERM'] ?? 0), 1);
    const s = (await liar.stats()).localio;
    assert.equal(s.grants, 0);
    assert.equal(s.grantRefusals, 1);
    assert.equal(s.reads, 0);
    assert.equal(s.fallbacks, 1);
    const fds = (await liar.do({ op: 'fds' })) as string[];
    assert.ok(!fds.some((f) => f.endsWith('/x.txt')), 'no descriptor of the file');

    // The same user claiming its own uid gets its grant.
    const honest = await client(d.exp, {}, { uid: 65534, gid: 65534 });
    assert.equal(await honest.do({ op: 'ready', timeoutMs: 5000 }), true);
    const h = await honest.do<FhIo>({ op: 'fhio', name: 'x.txt', kind: 'read' });
    assert.equal(h.status, 0);
    assert.equal((await honest.stats()).localio.reads, 1);
  });

  test('unexport revokes the grants of the export; nothing survives it', async () => {
    const extra = path.join(d.root, 'extra');
    fs.mkdirSync(extra);
    fs.chmodSync(extra, 0o777);
    // A second server exporting `extra`, so that unexporting it leaves the others.
    const srv2 = await startServer({ dir: extra, nfsPort: 0, portmapPort: 0, stateDir: path.join(d.root, 'state2'), localioRegistry: d.registry });
    try {
      const c = new ClientChild();
      children.push(c);
      await c.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv2.nfsPort, mountPort: srv2.mountPort, path: extra, localioRegistry: d.registry, uid: 1000, gid: 1000 } });
      assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
      const h = await c.do<number>({ op: 'open', path: 'held.bin', flags: 'w+' });
      await c.do({ op: 'hcall', h, method: 'write', args: [{ b64: Buffer.from('held open').toString('base64') }, 0, 9, 0] });
      await c.do({ op: 'hcall', h, method: 'sync' });
      const r1 = (await c.do({ op: 'hcall', h, method: 'read', args: [{ b64: Buffer.alloc(9).toString('base64') }, 0, 9, 0] })) as { bytesRead: number };
      assert.equal(r1.bytesRead, 9);
      const fdsBefore = (await c.do({ op: 'fds' })) as string[];
      assert.ok(fdsBefore.some((f) => f.endsWith('/held.bin')), 'the grant is a descriptor of the file');
      assert.ok(srv2.localio!.stats().grantsOpen >= 1);

      assert.equal(await srv2.unexport(extra), true);
      const ss = srv2.localio!.stats();
      assert.ok(ss.revoked >= 1);
      assert.equal(ss.revokeTimeouts, 0, 'the client closed its grants in time');
      assert.equal(ss.grantsOpen, 0);
      const fdsAfter = (await c.do({ op: 'fds' })) as string[];
      assert.ok(!fdsAfter.some((f) => f.endsWith('/held.bin')), 'no descriptor of the file is left');
      const s = (await c.stats()).localio;
      assert.ok(s.revoked >= 1);
      assert.equal(s.grantsOpen, 0);
      // The handle is stale now, locally as over RPC.
      const r2 = await c.send({ op: 'hcall', h, method: 'read', args: [{ b64: Buffer.alloc(9).toString('base64') }, 0, 9, 0] });
      assert.equal(r2.error?.code, 'ESTALE');
      const w2 = await c.send({ op: 'hcall', h, method: 'write', args: [{ b64: Buffer.from('after').toString('base64') }, 0, 5, 0] });
      const sync2 = await c.send({ op: 'hcall', h, method: 'sync' });
      assert.ok(w2.error?.code === 'ESTALE' || sync2.error?.code === 'ESTALE', 'the write after unexport fails');
      assert.equal(fs.readFileSync(path.join(extra, 'held.bin'), 'utf8'), 'held open');
    } finally {
      await srv2.close();
    }
  });
});
