// The LOCALIO handshake: program 400122 on the NFS connection (not with the
// portmapper), proof by a connection bound to the nonce and nothing else,
// embedded mode for a client and a server of one process, the registry
// directory rules, and the channel's message codec.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { connect } from '../../src/client/index.js';
import { RpcClient } from '../../src/rpc/index.js';
import { LOCALIO_V1_TABLE } from '../../src/proto/localio.gen.js';
import { PMAP_VERS_TABLE } from '../../src/proto/portmap.gen.js';
import { ProgramClient } from '../../src/client/program.js';
import { serveTable } from '../../src/server/program.js';
import { FdChannel } from '../../src/native/index.js';
import { MemoryBackend } from '../../src/fs/memory.js';
import { XdrReader, XdrWriter } from '../../src/xdr/index.js';
import { chan_type, decodechan_msg, encodechan_msg, type chan_msg } from '../../src/localio/channel.gen.js';
import { defaultRegistryDir, prepareRegistryDir, randomUuid, socketPathFor, uuidString } from '../../src/localio/registry.js';
import { localioDoctorLine } from '../../src/localio/index.js';
import { freePort } from '../peers/ports.js';
import { makeDirs, noFdPassing, type Dirs } from './helpers.js';

describe('program 400122', () => {
  let d: Dirs;
  let srv: RunningServer;
  before(async () => {
    d = makeDirs();
    srv = await startServer({ dir: d.exp, nfsPort: 0, portmapPort: await freePort(), stateDir: d.state, localioRegistry: d.registry });
  });
  after(async () => {
    await srv.close();
    d.cleanup();
  });

  test('answers NULL and UUID_IS_LOCAL on the NFS port; UUID_IS_LOCAL takes exactly 16 bytes', async () => {
    const rpc = new RpcClient({ host: '127.0.0.1', port: srv.nfsPort, prog: LOCALIO_V1_TABLE.prog, vers: 1, timeoutMs: 5000 });
    try {
      const p = new ProgramClient(rpc, LOCALIO_V1_TABLE);
      await p.call('NULL', undefined);
      await p.call('UUID_IS_LOCAL', randomUuid()); // nobody listens for it: a void reply all the same
      // A short argument is GARBAGE_ARGS.
      await assert.rejects(
        rpc.call(1, (w) => w.uint(7), () => undefined, { prog: 400122, vers: 1 }),
        (e: Error & { code?: string }) => e.code === 'GARBAGE_ARGS',
      );
    } finally {
      rpc.close();
    }
    const s = srv.localio!.stats();
    assert.equal(s.probes, 1);
    assert.equal(s.probesNotFound, 1);
  });

  test('is not registered with the portmapper', async () => {
    const pm = new RpcClient({ host: '127.0.0.1', port: srv.portmapPort, prog: PMAP_VERS_TABLE.prog, vers: 2, timeoutMs: 5000 });
    try {
      const p = new ProgramClient(pm, PMAP_VERS_TABLE);
      const list = await p.call('DUMP', undefined);
      assert.ok(list.some((e) => e.map.prog === 100003), 'NFS is registered');
      assert.ok(!list.some((e) => e.map.prog === 400122), 'LOCALIO is not');
      assert.equal(await p.call('GETPORT', { prog: 400122, vers: 1, prot: 6, port: 0 }), 0);
    } finally {
      pm.close();
    }
  });
});

describe('embedded mode: client and server in one process', () => {
  test('the handshake finds the server in-process and grants its backend; no NFS READ or WRITE', async () => {
    const backend = new MemoryBackend({ rootMode: 0o777 });
    const d = makeDirs();
    // Another registry than the client's, and no descriptors: only the in-process registry can match.
    const srv = await startServer({ backend, dir: '/mem', nfsPort: 0, portmapPort: 0, localioRegistry: path.join(d.root, 'nowhere') });
    try {
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: '/mem', uid: 0, gid: 0, localioRegistry: d.registry });
      try {
        assert.equal(await c.localioReady(5000), true);
        const data = randomBytes(2_500_000);
        await c.writeFile('m.bin', data);
        assert.ok((await c.readFile('m.bin')).equals(data));
        const h = await c.open('m.bin', 'r+');
        await h.write(Buffer.from('XY'), 0, 2, 5);
        await h.sync();
        const b = Buffer.alloc(10);
        await h.read(b, 0, 10, 0);
        await h.close();
        assert.equal(b.subarray(5, 7).toString(), 'XY');
        const l = c.stats().localio!;
        assert.equal(l.mode, 'embedded');
        assert.ok(l.writes > 0 && l.reads > 0);
        assert.equal(l.fallbacks, 0);
        assert.equal(c.stats().nfsOps['READ'], 0);
        assert.equal(c.stats().nfsOps['WRITE'], 0);
        const procs = srv.stats.snapshot().filter((p) => p.program === 'nfs').map((p) => p.procedure);
        assert.ok(!procs.includes('READ') && !procs.includes('WRITE') && !procs.includes('COMMIT'), procs.join(','));
        assert.equal(srv.localio!.stats().probesInProcess, 1);
      } finally {
        await c.close();
      }
      assert.equal(srv.localio!.stats().grantsOpen, 0);
    } finally {
      await srv.close();
      d.cleanup();
    }
  });

  test('stopping the server ends the embedded session; the client goes back to RPC', async () => {
    const d = makeDirs();
    const srv = await startServer({ dir: d.exp, nfsPort: 0, portmapPort: 0, stateDir: d.state, localioRegistry: d.registry });
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: d.exp, localioRegistry: d.registry, soft: true, timeoutMs: 2000 });
    try {
      assert.equal(await c.localioReady(5000), true);
      await c.writeFile('e.txt', 'embedded');
      await srv.close();
      const l = c.stats().localio!;
      assert.equal(l.state, 'remote');
      assert.equal(l.sessionsLost, 1);
    } finally {
      await c.close().catch(() => undefined);
      d.cleanup();
    }
  });
});

describe('proof of co-location', { skip: noFdPassing() }, () => {
  let d: Dirs;
  let srv: RunningServer;
  before(async () => {
    d = makeDirs();
    // A real NFS server without LOCALIO, and a fake LOCALIO program on its RpcServer.
    srv = await startServer({ dir: d.exp, nfsPort: 0, portmapPort: 0, stateDir: d.state, localio: false });
  });
  after(async () => {
    await srv.close();
    d.cleanup();
  });

  function fake(onProbe: (uuid: Buffer) => Promise<void> | void): void {
    srv.rpc.register(
      serveTable(LOCALIO_V1_TABLE, {
        NULL: () => undefined,
        UUID_IS_LOCAL: async (uuid) => {
          await onProbe(Buffer.from(uuid));
        },
      }),
    );
  }

  test('a peer that answers UUID_IS_LOCAL but never connects is not local', async () => {
    let seen = 0;
    let sawSocket = false;
    fake((uuid) => {
      seen++;
      sawSocket = fs.existsSync(socketPathFor(d.registry, uuid));
    });
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: d.exp, localioRegistry: d.registry });
    try {
      assert.equal(await c.localioReady(5000), false);
      await c.writeFile('f.txt', 'remote after all');
      const l = c.stats().localio!;
      assert.equal(seen, 1);
      assert.equal(sawSocket, true, 'the client listened while it asked');
      assert.equal(l.state, 'remote');
      assert.equal(l.probeSuccesses, 0);
      assert.ok(c.stats().nfsOps['WRITE']! > 0);
      assert.deepEqual(fs.readdirSync(d.registry), [], 'the socket is gone after the probe');
    } finally {
      await c.close();
    }
  });

  test('a connection with another nonce, or no hello, proves nothing', async () => {
    const msg = (m: chan_msg): Buffer => {
      const w = new XdrWriter();
      encodechan_msg(w, m);
      return w.toBuffer();
    };
    const opened: FdChannel[] = [];
    fake(async (uuid) => {
      const sock = socketPathFor(d.registry, uuid);
      // One connection says hello for another nonce, one says nothing.
      const a = await FdChannel.connect(sock);
      await a.send(msg({ type: chan_type.CHAN_HELLO, hello: { vers: 1, nonce: randomUuid(), instance: randomBytes(16), verf: randomBytes(8) } }));
      const b = await FdChannel.connect(sock);
      for (const ch of [a, b]) ch.on('message', () => undefined); // read, so the end is seen
      opened.push(a, b);
    });
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: d.exp, localioRegistry: d.registry });
    try {
      assert.equal(await c.localioReady(5000), false);
      assert.equal(c.stats().localio!.state, 'remote');
      // The client closed both.
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(opened.every((ch) => ch.closed));
    } finally {
      await c.close();
      for (const ch of opened) ch.close();
    }
  });
});

describe('registry', () => {
  test('default path: the environment, then /run as root, then XDG_RUNTIME_DIR', () => {
    assert.equal(defaultRegistryDir({ TSNFS_LOCALIO_REGISTRY: '/srv/reg' }), '/srv/reg');
    if (process.getuid?.() === 0) assert.equal(defaultRegistryDir({}), '/run/tsnfs/localio');
  });

  test('socket names are the nonce as a UUID', () => {
    const u = randomUuid();
    assert.equal(u.length, 16);
    assert.equal(u[6]! >> 4, 4, 'version 4');
    assert.equal(u[8]! >> 6, 2, 'RFC 9562 variant');
    assert.match(uuidString(u), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(socketPathFor('/r', u), `/r/${uuidString(u)}.sock`);
  });

  test('a registry is made 0700; one open to others is refused; a group-shared one gets 0660 sockets', () => {
    const d = makeDirs();
    try {
      const made = path.join(d.root, 'a', 'b');
      const r = prepareRegistryDir(made);
      assert.ok(r.ok);
      assert.equal(fs.statSync(made).mode & 0o777, 0o700);
      if (r.ok) assert.equal(r.socketMode, 0o600);
      const open = path.join(d.root, 'open');
      fs.mkdirSync(open);
      fs.chmodSync(open, 0o777);
      const o = prepareRegistryDir(open);
      assert.equal(o.ok, false);
      const shared = path.join(d.root, 'shared');
      fs.mkdirSync(shared);
      fs.chmodSync(shared, 0o770);
      const s = prepareRegistryDir(shared);
      assert.ok(s.ok && s.socketMode === 0o660);
      const long = prepareRegistryDir(path.join(d.root, 'x'.repeat(90)));
      assert.equal(long.ok, false);
    } finally {
      d.cleanup();
    }
  });

  test('a client in a registry open to others does not go local', async () => {
    const d = makeDirs();
    fs.chmodSync(d.registry, 0o777);
    const srv = await startServer({ dir: d.exp, nfsPort: 0, portmapPort: 0, stateDir: d.state, localio: false });
    let probed = 0;
    srv.rpc.register(serveTable(LOCALIO_V1_TABLE, { NULL: () => undefined, UUID_IS_LOCAL: () => void probed++ }));
    try {
      const c = await connect({ host: '127.0.0.1', nfsPort: srv.nfsPort, mountPort: srv.mountPort, path: d.exp, localioRegistry: d.registry });
      assert.equal(await c.localioReady(5000), false);
      assert.equal(probed, 1);
      assert.deepEqual(fs.readdirSync(d.registry), []);
      await c.close();
    } finally {
      await srv.close();
      d.cleanup();
    }
  });

  test('tsnfs doctor line', () => {
    assert.match(localioDoctorLine(), /^localio: .*registry /);
  });
});

describe('channel messages', () => {
  test('round trip', () => {
    const msgs: chan_msg[] = [
      { type: chan_type.CHAN_HELLO, hello: { vers: 1, nonce: randomBytes(16), instance: randomBytes(16), verf: randomBytes(8) } },
      { type: chan_type.CHAN_OPEN, open: { req: 7, fh: randomBytes(40), write: true, uid: 1000, gid: 100, gids: [4, 24] } },
      { type: chan_type.CHAN_GRANT, grant: { req: 7, grant: 3, write: true, sync: false, fsid: 42n } },
      { type: chan_type.CHAN_GRANT, grant: { req: 8, grant: 4, write: false, sync: true, fsid: undefined } },
      { type: chan_type.CHAN_REFUSE, refuse: { req: 9, status: 13, reason: 'permission denied' } },
      { type: chan_type.CHAN_CLOSE, close: { grants: [1, 2] } },
      { type: chan_type.CHAN_REVOKE, revoke: { grants: [3] } },
      { type: chan_type.CHAN_REVOKED, revoked: { grants: [] } },
    ];
    for (const m of msgs) {
      const w = new XdrWriter();
      encodechan_msg(w, m);
      const r = new XdrReader(w.toBuffer());
      assert.deepEqual(decodechan_msg(r), m);
      r.done();
    }
    // A handle longer than NFSv3's 64 bytes does not encode, nor decode.
    assert.throws(() => encodechan_msg(new XdrWriter(), { type: chan_type.CHAN_OPEN, open: { req: 1, fh: Buffer.alloc(65), write: false, uid: 0, gid: 0, gids: [] } }));
    assert.throws(() => decodechan_msg(new XdrReader(Buffer.from([0, 0, 0, 99]))));
  });
});
