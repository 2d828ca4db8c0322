// LOCALIO between two processes on this host: `tsnfs serve` in a child
// process, the client here (or in a child of its own).
//
// - With a shared registry the probe succeeds, and file data (READ, WRITE,
//   COMMIT) bypasses RPC: the server answers no NFS READ, WRITE or COMMIT,
//   while the bytes on disk and the bytes read back are right.
// - Stable writes through the transport report what they were asked and
//   carry the server's write verifier and the file's attributes.
// - With another registry the client stays on RPC (same host, same address).
// - Without the native addon the client reports LOCALIO unavailable and
//   everything goes over RPC.
// - `tsnfs serve --no-localio`: PROG_UNAVAIL, the client stays on RPC.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { connect, type NfsClient } from '../../src/client/index.js';
import { stable_how } from '../../src/proto/nfs3.gen.js';
import { spawn } from 'node:child_process';
import { ClientChild, dec, MAIN, makeDirs, noFdPassing, sha, startServerChild, type Dirs, type ServerChild } from './helpers.js';

/** Runs a command to its end: exit code, stdout (bytes), stderr. */
function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; out: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (b: Buffer) => out.push(b));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out: Buffer.concat(out), stderr: err }));
  });
}

const skip = noFdPassing();

describe('LOCALIO between two processes', { skip, timeout: 120_000 }, () => {
  let d: Dirs;
  let srv: ServerChild;

  before(async () => {
    d = makeDirs();
    srv = await startServerChild(d, { registry: d.registry });
  });

  after(async () => {
    await srv?.stop();
    d?.cleanup();
  });

  const connectTo = (extra: Record<string, unknown> = {}): Promise<NfsClient> =>
    connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry, ...extra });

  test('the probe proves the server local; reads, writes and commits bypass RPC', async () => {
    const c = await connectTo();
    try {
      assert.equal(await c.localioReady(5000), true);
      const before = await srv.ops();
      const data = randomBytes(3 * 1024 * 1024 + 123);
      await c.writeFile('big.bin', data);
      const h = await c.open('big.bin', 'r+');
      await h.write(Buffer.from('patched'), 0, 7, 1000);
      await h.sync();
      const back = Buffer.alloc(data.length);
      const { bytesRead } = await h.read(back, 0, back.length, 0);
      await h.close();
      data.write('patched', 1000);
      assert.equal(bytesRead, data.length);
      assert.equal(sha(back), sha(data));
      assert.equal(sha(fs.readFileSync(path.join(d.exp, 'big.bin'))), sha(data));
      assert.equal(sha(await c.readFile('big.bin')), sha(data));
      const after = await srv.ops();
      for (const p of ['READ', 'WRITE', 'COMMIT']) assert.equal(after[p] ?? 0, before[p] ?? 0, `server answered NFS ${p}`);
      const s = c.stats();
      assert.equal(s.nfsOps['READ'], 0);
      assert.equal(s.nfsOps['WRITE'], 0);
      const l = s.localio!;
      assert.equal(l.state, 'local');
      assert.equal(l.mode, 'channel');
      assert.equal(l.probes, 1);
      assert.equal(l.probeSuccesses, 1);
      assert.ok(l.grants >= 2, `grants ${l.grants}`);
      assert.ok(l.writes > 0 && l.writeBytes >= data.length, `writes ${l.writes}/${l.writeBytes}`);
      assert.ok(l.reads > 0 && l.readBytes >= data.length, `reads ${l.reads}/${l.readBytes}`);
      assert.ok(l.commits >= 1);
      assert.equal(l.fallbacks, 0);
      const m = await srv.metrics();
      assert.match(m, /tsnfs_localio_probes_total\{result="local"\} 1/);
      assert.match(m, /tsnfs_localio_grants_total\{mode="rw"\} [1-9]/);
    } finally {
      await c.close();
    }
    // Closed files give their grants back.
    const m = await srv.metrics();
    assert.match(m, /tsnfs_localio_grants_open 0/);
  });

  test('the first IO right after connect waits for the probe and goes local', async () => {
    const c = await connectTo();
    try {
      // No localioReady(): the first write-back and read wait for the probe themselves.
      await c.writeFile('first.txt', 'first');
      assert.equal(await c.readFile('first.txt', 'utf8'), 'first');
      const s = c.stats();
      assert.equal(s.nfsOps['WRITE'], 0);
      assert.equal(s.nfsOps['READ'], 0);
      assert.ok(s.localio!.writes >= 1 && s.localio!.reads >= 1);
      assert.equal(s.localio!.fallbacks, 0);
    } finally {
      await c.close();
    }
  });

  test('a one-shot tsnfs cp and tsnfs cat go local', async () => {
    const src = path.join(d.root, 'upload.bin');
    const data = randomBytes(2 * 1024 * 1024 + 5);
    fs.writeFileSync(src, data);
    const url = `nfs://127.0.0.1${d.exp}/copied.bin?nfsport=${srv.port}&mountport=${srv.port}`;
    const env = { ...process.env, TSNFS_LOCALIO_REGISTRY: d.registry };
    const cp = await run(process.execPath, [MAIN, 'cp', '--stats', '--no-progress', src, url], { env });
    assert.equal(cp.code, 0, cp.stderr);
    const st = JSON.parse(cp.stderr.trim().split('\n').pop()!) as { nfsOps: Record<string, number>; localio: { state: string; writes: number; writeBytes: number } };
    assert.equal(st.localio.state, 'local');
    assert.equal(st.localio.writeBytes, data.length);
    assert.equal(st.nfsOps['WRITE'], 0);
    assert.equal(sha(fs.readFileSync(path.join(d.exp, 'copied.bin'))), sha(data));
    const cat = await run(process.execPath, [MAIN, 'cat', '--stats', url], { env });
    assert.equal(cat.code, 0);
    assert.equal(sha(cat.out), sha(data));
    const cs = JSON.parse(cat.stderr.trim().split('\n').pop()!) as { nfsOps: Record<string, number>; localio: { reads: number } };
    assert.ok(cs.localio.reads > 0);
    assert.equal(cs.nfsOps['READ'], 0);
  });

  test('stable_how is kept; results carry the verifier and the attributes', async () => {
    const c = await connectTo();
    try {
      assert.equal(await c.localioReady(5000), true);
      await c.writeFile('stable.bin', Buffer.alloc(10));
      const h = await c.open('stable.bin', 'r');
      const fh = h.inode.fh;
      const t = c.transportFor(fh);
      assert.equal(t.kind, 'localio');
      const rpc = c.rpcTransport;
      const viaRpc = await rpc.write(fh, 0, [Buffer.from('rpc!')], 4, stable_how.UNSTABLE);
      for (const how of [stable_how.UNSTABLE, stable_how.DATA_SYNC, stable_how.FILE_SYNC]) {
        const r = await t.write(fh, 4, [Buffer.from('ab'), Buffer.from('cd')], 4, how);
        assert.equal(r.count, 4);
        assert.equal(r.committed, how);
        assert.ok(r.verf.equals(viaRpc.verf), 'the verifier of the server instance');
        assert.equal(r.wcc?.after?.size, 10n);
        assert.ok(r.wcc?.before, 'pre-op attributes');
      }
      const grow = await t.write(fh, 20, [Buffer.from('xyz')], 3, stable_how.FILE_SYNC);
      assert.equal(grow.wcc?.after?.size, 23n);
      assert.equal(grow.wcc?.before?.size, 10n);
      const cm = await t.commit(fh, 0, 0);
      assert.ok(cm.verf.equals(viaRpc.verf));
      assert.equal(cm.wcc?.after?.size, 23n);
      // The attributes are the server's own: what GETATTR answers.
      const ga = await c.nfs.call('GETATTR', { object: fh });
      assert.equal(ga.status, 0);
      if (ga.status === 0) {
        assert.equal(ga.resok.obj_attributes.fileid, cm.wcc?.after?.fileid);
        assert.equal(ga.resok.obj_attributes.fsid, cm.wcc?.after?.fsid);
      }
      const r = await t.read(fh, 0, 100);
      assert.equal(r.data.toString('latin1'), 'rpc!abcd' + '\0'.repeat(12) + 'xyz');
      assert.equal(r.eof, true);
      assert.equal(fs.readFileSync(path.join(d.exp, 'stable.bin')).toString('latin1'), 'rpc!abcd' + '\0'.repeat(12) + 'xyz');
      await h.close();
    } finally {
      await c.close();
    }
  });

  test('with another registry the client stays on RPC', async () => {
    const other = fs.mkdtempSync(path.join(d.root, 'other-'));
    fs.chmodSync(other, 0o700);
    const c = await connectTo({ localioRegistry: other });
    try {
      assert.equal(await c.localioReady(5000), false);
      const before = await srv.ops();
      await c.writeFile('remote.txt', 'over rpc');
      assert.equal(await c.readFile('remote.txt', 'utf8'), 'over rpc');
      const after = await srv.ops();
      assert.ok((after['WRITE'] ?? 0) > (before['WRITE'] ?? 0));
      const l = c.stats().localio!;
      assert.equal(l.state, 'remote');
      assert.equal(l.probes, 1);
      assert.equal(l.probeSuccesses, 0);
      assert.equal(l.reads + l.writes, 0);
      assert.deepEqual(fs.readdirSync(other), [], 'the probe socket is removed');
    } finally {
      await c.close();
    }
    assert.match(await srv.metrics(), /tsnfs_localio_probes_total\{result="not_found"\} [1-9]/);
  });

  test('localio: false and ?localio=0 never probe', async () => {
    const before = await srv.metrics();
    const probes = (t: string): number => Number(/tsnfs_rpc_requests_total\{program="localio",version="1",procedure="UUID_IS_LOCAL",status="success"\} (\d+)/.exec(t)?.[1] ?? 0);
    const c1 = await connectTo({ localio: false });
    const c2 = await connect(`nfs://127.0.0.1${d.exp}?nfsport=${srv.port}&mountport=${srv.port}&localio=0`, { localioRegistry: d.registry });
    try {
      await c1.writeFile('off1.txt', 'x');
      await c2.writeFile('off2.txt', 'y');
      assert.equal(await c1.localioReady(100), false);
      assert.equal(c1.stats().localio!.state, 'off');
      assert.equal(c2.stats().localio!.state, 'off');
      assert.equal(c2.stats().localio!.probes, 0);
    } finally {
      await c1.close();
      await c2.close();
    }
    assert.equal(probes(await srv.metrics()), probes(before));
  });

  test('without the native addon the client stays on RPC and says why', async () => {
    const child = new ClientChild({ env: { TSNFS_NO_NATIVE: '1' } });
    try {
      await child.do({ op: 'connect', opts: { host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry } });
      assert.equal(await child.do({ op: 'ready', timeoutMs: 3000 }), false);
      const data = randomBytes(100_000);
      await child.call('writeFile', 'nonative.bin', data);
      assert.equal(sha(dec(await child.call('readFile', 'nonative.bin'))), sha(data));
      const s = await child.stats();
      assert.equal(s.localio.fdPassing, false);
      assert.equal(s.localio.state, 'remote');
      assert.ok(s.nfsOps['WRITE']! > 0 && s.nfsOps['READ']! > 0);
      assert.match(String((s.localio as { reason?: string }).reason), /TSNFS_NO_NATIVE/);
    } finally {
      await child.exit();
    }
  });
});

describe('LOCALIO against a server without it', { timeout: 60_000 }, () => {
  test('a server without the native addon answers the probe but cannot connect: RPC', async () => {
    const d = makeDirs();
    const srv = await startServerChild(d, { registry: d.registry, env: { TSNFS_NO_NATIVE: '1' } });
    try {
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry });
      try {
        assert.equal(await c.localioReady(5000), false);
        await c.writeFile('a.txt', 'plain');
        const l = c.stats().localio!;
        assert.equal(l.state, 'remote');
        assert.equal(l.probes, 1);
        assert.equal(l.probeUnsupported, 0);
        assert.ok(c.stats().nfsOps['WRITE']! > 0);
      } finally {
        await c.close();
      }
      assert.match(await srv.metrics(), /tsnfs_localio_probes_total\{result="not_found"\} 1/);
    } finally {
      await srv.stop();
      d.cleanup();
    }
  });

  test('tsnfs serve --no-localio: PROG_UNAVAIL, the client stays on RPC silently', async () => {
    const d = makeDirs();
    const srv = await startServerChild(d, { registry: d.registry, extraArgs: ['--no-localio'] });
    try {
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry });
      try {
        assert.equal(await c.localioReady(5000), false);
        await c.writeFile('a.txt', 'plain');
        assert.equal(await c.readFile('a.txt', 'utf8'), 'plain');
        const l = c.stats().localio!;
        assert.equal(l.state, 'remote');
        assert.equal(l.probeUnsupported, 1);
        assert.equal(l.probeSuccesses, 0);
      } finally {
        await c.close();
      }
      assert.match(await srv.metrics(), /status="prog_unavail"\} [1-9]/);
    } finally {
      await srv.stop();
      d.cleanup();
    }
  });
});
