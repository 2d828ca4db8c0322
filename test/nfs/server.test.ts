// The NFSv3 server over a real directory (LocalBackend): the shared suite,
// then what only a server with a state directory and real files can show
// (restarts, the write verifier, two exports) and the composition of
// startServer (portmapper registrations, metrics, NFSACL, `npm start`).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer, type ServeOptions } from '../../src/server/index.js';
import { parseExports } from '../../src/server/exports.js';
import { RpcClient, RpcProcUnavailError, RpcProgUnavailError } from '../../src/rpc/index.js';
import { MemoryBackend } from '../../src/fs/index.js';
import { decodeBytes } from '../../src/xdr/index.js';
import { freePorts } from '../peers/ports.js';
import { PMAP_VERS_TABLE } from '../../src/proto/portmap.gen.js';
import { MOUNT_V3_TABLE, mountstat3 } from '../../src/proto/mount3.gen.js';
import { ALICE, BOB, Nfs, expectStatus, mount, mountCall, nfsCall, nfsClient, ok, sattr } from '../helpers/nfs.js';
import { nfsSuite, type FixtureOptions } from './suite.js';

const isRoot = process.getuid?.() === 0;
/** Who the tests act as: without root, files belong to this process, so its own user. */
const ME = isRoot ? ALICE : { ...ALICE, uid: process.getuid!(), gid: process.getgid!(), gids: [process.getgid!()] };

async function tmpTree(): Promise<{ base: string; dir: string; state: string }> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-nfs-'));
  const dir = path.join(base, 'export');
  await fs.mkdir(dir);
  await fs.chmod(base, 0o755);
  await fs.chmod(dir, 0o777);
  return { base, dir, state: path.join(base, 'state') };
}

nfsSuite(
  'LocalBackend',
  async (opts: FixtureOptions = {}) => {
    const t = await tmpTree();
    const common: ServeOptions = { nfsPort: 0, portmapPort: 0, stateDir: t.state };
    const server = opts.clients
      ? await startServer({ ...common, exports: parseExports(`${t.dir} ${opts.clients}`) })
      : await startServer({ ...common, dir: t.dir });
    return {
      server,
      exportPath: t.dir,
      cleanup: async () => {
        await server.close();
        await fs.rm(t.base, { recursive: true, force: true });
      },
    };
  },
  {
    canChown: isRoot,
    committed: (stable) => stable,
    // Not root: files belong to this process, so Alice is this process's user.
    users: { alice: ME, bob: BOB },
  },
);

describe('startServer over directories', () => {
  test('handles survive a restart on the same state dir; the write verifier changes', async () => {
    const t = await tmpTree();
    try {
      const opts: ServeOptions = { nfsPort: 0, portmapPort: 0, stateDir: t.state, dir: t.dir };
      let server = await startServer(opts);
      let c = nfsClient(server.nfsPort, ME);
      const root = await mount(c, t.dir);
      const s = new Nfs(c);
      const d = await s.mkdir(root, 'd');
      const f = await s.create(d, 'f');
      const w1 = await s.write(f, 0n, Buffer.from('before restart'), 0);
      c.close();
      await server.close();

      server = await startServer(opts);
      c = nfsClient(server.nfsPort, ME);
      const s2 = new Nfs(c);
      try {
        // No MNT: the old handles are used as they are.
        assert.equal((await s2.read(f, 0n, 100)).data.toString(), 'before restart');
        assert.equal((await s2.getattr(d)).type, 2);
        assert.deepEqual((await s2.lookup(root, 'd')).data, d.data);
        const w2 = await s2.write(f, 0n, Buffer.from('after'), 0);
        assert.notDeepEqual(w2.verf, w1.verf, 'a new write verifier after the restart');
        assert.deepEqual(ok(await s2.call('COMMIT', { file: f, offset: 0n, count: 0 })).verf, w2.verf);
        assert.deepEqual((await mount(c, t.dir)).data, root.data, 'the same root handle');
      } finally {
        c.close();
        await server.close();
      }
      // A server with another state dir does not accept them.
      const other = await startServer({ ...opts, stateDir: path.join(t.base, 'other-state') });
      const c3 = nfsClient(other.nfsPort, ME);
      try {
        expectStatus(await nfsCall(c3, 'GETATTR', { object: f }), 'NFS3ERR_STALE');
      } finally {
        c3.close();
        await other.close();
      }
    } finally {
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('names that are not UTF-8: the bytes on disk are the bytes sent, and what the disk has is served, across a restart', async () => {
    const t = await tmpTree();
    const raw = (latin1: string): Buffer => Buffer.from(latin1, 'latin1');
    const at = (...parts: string[]): Buffer => Buffer.concat([Buffer.from(t.dir), ...parts.flatMap((p) => [Buffer.from('/'), raw(p)])]);
    const opts: ServeOptions = { nfsPort: 0, portmapPort: 0, stateDir: t.state, dir: t.dir };
    let server: RunningServer | undefined;
    let c: RpcClient | undefined;
    const start = async (): Promise<Nfs> => {
      server = await startServer(opts);
      c = nfsClient(server.nfsPort, ME);
      return new Nfs(c);
    };
    const stop = async (): Promise<void> => {
      c?.close();
      await server?.close();
      c = server = undefined;
    };
    try {
      // Made on the server's host: a Latin-1 directory holding a Latin-1 file.
      await fs.mkdir(at('r\xe9pertoire'), { mode: 0o777 });
      await fs.chmod(at('r\xe9pertoire'), 0o777);
      await fs.writeFile(at('r\xe9pertoire', 'fichier-\xe9t\xe9'), 'local bytes');
      let s = await start();
      const root = await mount(c!, t.dir);
      const dir = await s.lookup(root, decodeBytes(raw('r\xe9pertoire')));
      assert.deepEqual((await s.readdirAll(dir)).map((e) => e.name).sort(), ['.', '..', decodeBytes(raw('fichier-\xe9t\xe9'))]);
      const file = await s.lookup(dir, decodeBytes(raw('fichier-\xe9t\xe9')));
      assert.equal((await s.read(file, 0n, 100)).data.toString(), 'local bytes');
      // Made through NFS: a file, a FIFO and a socket, each under its exact bytes.
      const made = await s.create(dir, decodeBytes(raw('n\xf6')));
      await s.write(made, 0n, Buffer.from('nfs bytes'));
      ok(await s.call('MKNOD', { where: { dir, name: decodeBytes(raw('fifo-\xff')) }, what: { type: 7, pipe_attributes: sattr({ mode: 0o600 }) } }));
      ok(await s.call('MKNOD', { where: { dir, name: decodeBytes(raw('sock-\xff')) }, what: { type: 6, pipe_attributes: sattr({ mode: 0o600 }) } }));
      assert.equal(await fs.readFile(at('r\xe9pertoire', 'n\xf6'), 'utf8'), 'nfs bytes');
      assert.ok((await fs.lstat(at('r\xe9pertoire', 'fifo-\xff'))).isFIFO());
      assert.ok((await fs.lstat(at('r\xe9pertoire', 'sock-\xff'))).isSocket());
      const onDisk = (await fs.readdir(at('r\xe9pertoire'), { encoding: 'buffer' })).map((b) => b.toString('latin1')).sort();
      assert.deepEqual(onDisk, ['fichier-\xe9t\xe9', 'fifo-\xff', 'n\xf6', 'sock-\xff'], 'no temporary names left, no other names made');
      await stop();
      // After a restart the old handles still reach them (no MNT, no LOOKUP).
      s = await start();
      assert.equal((await s.read(file, 0n, 100)).data.toString(), 'local bytes');
      assert.equal((await s.read(made, 0n, 100)).data.toString(), 'nfs bytes');
    } finally {
      await stop();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('two exports: RENAME and LINK across them are XDEV; each has its own handles', async () => {
    const t = await tmpTree();
    const d2 = path.join(t.base, 'second');
    await fs.mkdir(d2, { mode: 0o777 });
    await fs.chmod(d2, 0o777);
    const server = await startServer({ nfsPort: 0, portmapPort: 0, stateDir: t.state, exports: parseExports(`${t.dir} *(rw,insecure)\n${d2} *(rw,insecure)\n`) });
    const c = nfsClient(server.nfsPort, ME);
    try {
      const r1 = await mount(c, t.dir);
      const r2 = await mount(c, d2);
      assert.notDeepEqual(r1.data, r2.data);
      const s = new Nfs(c);
      const f = await s.create(r1, 'f');
      expectStatus(await s.call('RENAME', { from: { dir: r1, name: 'f' }, to: { dir: r2, name: 'g' } }), 'NFS3ERR_XDEV');
      expectStatus(await s.call('LINK', { file: f, link: { dir: r2, name: 'g' } }), 'NFS3ERR_XDEV');
      const exports = await mountCall(c, 'EXPORT', undefined);
      assert.deepEqual(exports.map((e) => e.ex_dir).sort(), [t.dir, d2].sort());
    } finally {
      c.close();
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('a missing export directory is skipped; the others are served', async () => {
    const t = await tmpTree();
    const server = await startServer({ nfsPort: 0, portmapPort: 0, stateDir: t.state, exports: parseExports(`${t.dir} *(rw,insecure)\n${t.base}/missing *(rw,insecure)\n`) });
    const c = nfsClient(server.nfsPort, ME);
    try {
      assert.equal(server.exports.length, 1);
      await mount(c, t.dir);
      assert.equal((await mountCall(c, 'MNT', `${t.base}/missing`)).fhs_status, mountstat3.MNT3ERR_NOENT);
    } finally {
      c.close();
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('async export: writes are reported UNSTABLE and COMMIT returns the verifier', async () => {
    const t = await tmpTree();
    const server = await startServer({ nfsPort: 0, portmapPort: 0, stateDir: t.state, exports: parseExports(`${t.dir} *(rw,insecure,async)`) });
    const c = nfsClient(server.nfsPort, ME);
    try {
      const s = new Nfs(c);
      const f = await s.create(await mount(c, t.dir), 'f');
      const w = await s.write(f, 0n, Buffer.from('x'), 2);
      assert.equal(w.committed, 0);
      assert.deepEqual(ok(await s.call('COMMIT', { file: f, offset: 0n, count: 0 })).verf, w.verf);
    } finally {
      c.close();
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('portmapper: NFS 3 at the NFS port, MOUNT 3 and 1 at the MOUNT port; NFSACL is not served', async () => {
    const t = await tmpTree();
    const [pmPort, mountPort] = await freePorts(2);
    const server = await startServer({ nfsPort: 0, mountPort, portmapPort: pmPort, stateDir: t.state, dir: t.dir });
    const pc = new RpcClient({ host: '127.0.0.1', port: server.portmapPort, prog: 100000, vers: 2 });
    const c = nfsClient(server.nfsPort, ME);
    try {
      assert.equal(server.portmapPort, pmPort);
      assert.equal(server.mountPort, mountPort);
      assert.notEqual(server.nfsPort, mountPort);
      const getport = PMAP_VERS_TABLE.procedures[3];
      const port = (prog: number, vers: number) => pc.call(getport.proc, (w) => getport.encodeArgs(w, { prog, vers, prot: 6, port: 0 }), getport.decodeRes);
      assert.equal(await port(100003, 3), server.nfsPort);
      assert.equal(await port(100005, 3), mountPort);
      assert.equal(await port(100005, 1), mountPort);
      assert.equal(await port(100227, 3), 0, 'NFSACL is not registered');
      await assert.rejects(c.call(0, undefined, () => undefined, { prog: 100227, vers: 3 }), RpcProgUnavailError);
      // MOUNT v1 (what showmount asks): EXPORT and DUMP, but no MNT (its handles are 32 bytes).
      const exp = MOUNT_V3_TABLE.procedures[5];
      const v1 = await c.call(exp.proc, undefined, exp.decodeRes, { prog: 100005, vers: 1 });
      assert.deepEqual(v1.map((e) => e.ex_dir), [t.dir]);
      await assert.rejects(c.call(1, (w) => w.string(t.dir), () => undefined, { prog: 100005, vers: 1 }), RpcProcUnavailError);
      // MOUNT is served on the NFS port too.
      await mount(c, t.dir);
    } finally {
      pc.close();
      c.close();
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('MOUNT shares the NFS listener unless given a port of its own', async () => {
    const t = await tmpTree();
    const server = await startServer({ nfsPort: 0, mountPort: 0, portmapPort: 0, stateDir: t.state, dir: t.dir });
    try {
      assert.equal(server.mountPort, server.nfsPort);
      assert.ok(server.describe().some((l) => l.includes(`mountport=${server.nfsPort}`)));
    } finally {
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('--metrics serves Prometheus text with per-procedure counts', async () => {
    const t = await tmpTree();
    const server = await startServer({ nfsPort: 0, portmapPort: 0, stateDir: t.state, dir: t.dir, metrics: '127.0.0.1:0' });
    const c = nfsClient(server.nfsPort, ME);
    try {
      const root = await mount(c, t.dir);
      const s = new Nfs(c);
      const f = await s.create(root, 'm');
      await s.write(f, 0n, Buffer.alloc(5000));
      await s.read(f, 0n, 5000);
      assert.ok(server.metricsUrl);
      const text = await (await fetch(server.metricsUrl)).text();
      assert.match(text, /tsnfs_rpc_requests_total\{program="nfs",version="3",procedure="WRITE",status="success"\} 1/);
      assert.match(text, /tsnfs_rpc_requests_total\{program="mount",version="3",procedure="MNT",status="success"\} 1/);
      assert.match(text, /tsnfs_read_bytes_total\{transport="rpc"\} 5000/);
      assert.match(text, /tsnfs_written_bytes_total\{transport="rpc"\} 5000/);
      assert.match(text, /tsnfs_drc_lookups_total\{result="miss"\} 1/);
    } finally {
      c.close();
      await server.close();
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('`tsnfs serve` with no DIR creates ./export and prints how to reach it', async () => {
    const t = await tmpTree();
    const cwd = path.join(t.base, 'cwd');
    await fs.mkdir(cwd);
    const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--portmap-port', '0', '--state-dir', t.state, '--log-level', 'warn'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no output; got ${JSON.stringify(out)}`)), 20_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('mount -t nfs')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      const exportDir = path.join(cwd, 'export');
      assert.ok((await fs.stat(exportDir)).isDirectory(), './export was created');
      const real = await fs.realpath(exportDir);
      const url = /nfs:\/\/127\.0\.0\.1(\/\S+)\?version=3&nfsport=(\d+)&mountport=(\d+)/.exec(out);
      assert.ok(url, out);
      assert.ok(url[1] === exportDir || url[1] === real, `${url[1]} names ${exportDir}`);
      assert.match(out, new RegExp(`mount -t nfs -o vers=3,proto=tcp,port=${url[2]},mountport=${url[3]},mountproto=tcp,nolock 127\\.0\\.0\\.1:${url[1]} /mnt`));
      const c = nfsClient(Number(url[2]), ME);
      try {
        const root = await mount(c, url[1]!);
        ok(await nfsCall(c, 'FSINFO', { fsroot: root }));
      } finally {
        c.close();
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      await fs.rm(t.base, { recursive: true, force: true });
    }
  });

  test('embedder backends by path, with and without written rules', async () => {
    const one = new MemoryBackend({ rootMode: 0o777 });
    const two = new MemoryBackend({ rootMode: 0o777 });
    const server = await startServer({ nfsPort: 0, portmapPort: 0, backends: { '/one': one, '/two/': two } });
    const c = nfsClient(server.nfsPort, ALICE);
    try {
      assert.deepEqual(server.exports.map((e) => e.path).sort(), ['/one', '/two']);
      const s = new Nfs(c);
      await s.create(await mount(c, '/one'), 'in-one');
      await s.lookup(await mount(c, '/one'), 'in-one');
      expectStatus(await s.call('LOOKUP', { what: { dir: await mount(c, '/two'), name: 'in-one' } }), 'NFS3ERR_NOENT');
    } finally {
      c.close();
      await server.close();
    }
    await assert.rejects(startServer({ nfsPort: 0, portmapPort: 0, exports: parseExports('/one *(rw)'), backends: { '/one': one, '/elsewhere': two } }), /do not list/);
    await one.close();
    await two.close();
  });

  test('an embedder backend at "/" with no dir', async () => {
    const backend = new MemoryBackend({ rootMode: 0o777 });
    const server = await startServer({ nfsPort: 0, portmapPort: 0, backend });
    const c = nfsClient(server.nfsPort, ALICE);
    try {
      assert.equal(server.state.dir, '', 'state kept in memory: nothing on disk is exported');
      const root = await mount(c, '/');
      const s = new Nfs(c);
      const made = ok(await s.call('MKDIR', { where: { dir: root, name: 'x' }, attributes: sattr() }));
      assert.ok(made.obj);
      assert.equal((await mountCall(c, 'MNT', '/x')).fhs_status, 0);
      assert.deepEqual((await mount(c, '/x')).data, made.obj.data);
    } finally {
      c.close();
      await server.close();
      await backend.close();
    }
  });
});
