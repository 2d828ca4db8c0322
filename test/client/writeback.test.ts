// The write-back path against a small fake server that misbehaves on cue:
// a COMMIT with a changed verifier (the server lost uncommitted data), a
// server restart in the middle of a write, background errors (ENOSPC,
// EDQUOT, ESTALE) and the dirty limit. Also the connection options that
// need a controllable server: portmapper lookup, credentials, reserved
// ports, soft and hard mounts, JUKEBOX.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { nfsstat3 } from '../../src/proto/nfs3.gen.js';
import { connect, NfsError, type NfsClient } from '../../src/client/index.js';
import { FakeNfsServer, fakeUrl } from './fake-nfs.js';
import { fsx } from './fsx.js';

const MiB = 1024 * 1024;
const servers: FakeNfsServer[] = [];
const clients: NfsClient[] = [];

async function server(): Promise<FakeNfsServer> {
  const s = new FakeNfsServer();
  await s.start();
  servers.push(s);
  return s;
}

async function client(s: FakeNfsServer, params = '', opts: Parameters<typeof connect>[1] = {}): Promise<NfsClient> {
  const c = await connect(fakeUrl(s, params), opts);
  clients.push(c);
  return c;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

after(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  for (const s of servers) await s.stop();
});

describe('COMMIT verifiers', () => {
  test('a COMMIT with a new verifier makes the client send everything again', async () => {
    const s = await server();
    let crashed = false;
    s.hooks.commit = () => {
      if (!crashed) {
        crashed = true;
        s.crash(); // the server lost its uncommitted data and says so with a new verifier
      }
    };
    const c = await client(s);
    const data = randomBytes(5 * MiB + 123);
    const h = await c.open('f', 'w');
    await h.write(data, 0, data.length, 0);
    await h.close();
    assert.ok(crashed);
    assert.ok(s.file('f')!.stable.equals(data), 'the committed file is complete');
    const st = c.stats().writeback;
    assert.equal(st.verifierMismatches, 1);
    assert.ok(st.commitResends >= 6, `ranges sent again: ${st.commitResends}`);
    assert.equal(st.commitResentBytes, data.length);
    assert.ok(s.calls.COMMIT! >= 2);
    assert.equal(st.dirtyBytes, 0, 'nothing left charged');
  });

  test('a server restart during the writes: reconnect, retransmit, resend, complete', async () => {
    const s = await server();
    let restarted = false;
    s.hooks.write = (_f, off) => {
      if (!restarted && off >= 3 * MiB) {
        restarted = true;
        void s.restart(300);
        return new Promise<undefined>(() => undefined); // this reply is lost with the connection
      }
    };
    const c = await client(s);
    const data = randomBytes(8 * MiB);
    const h = await c.open('g', 'w');
    await h.write(data, 0, data.length, 0);
    await h.sync();
    assert.ok(restarted);
    assert.ok(s.file('g')!.stable.equals(data), 'the committed file is complete after the restart');
    assert.ok(c.stats().writeback.commitResends > 0, 'writes acknowledged before the restart were sent again');
    await h.close();
  });

  test('a single-chunk flush is FILE_SYNC and needs no COMMIT', async () => {
    const s = await server();
    const c = await client(s);
    await c.writeFile('small', 'hello');
    assert.equal(s.file('small')!.stable.toString(), 'hello');
    assert.equal(s.calls.COMMIT ?? 0, 0);
    assert.equal(c.stats().writeback.stableWrites, 1);
  });
});

describe('background writeback errors', () => {
  test('ENOSPC of a background WRITE is reported at the next write, once', async () => {
    const s = await server();
    s.hooks.write = (_f, off) => (off >= MiB ? nfsstat3.NFS3ERR_NOSPC : undefined);
    const c = await client(s);
    const h = await c.open('full', 'w');
    await h.write(Buffer.alloc(3 * MiB, 1), 0, 3 * MiB, 0); // full chunks go out at once
    await until(() => c.stats().writeback.errors >= 2, 'the background WRITEs to fail');
    await assert.rejects(h.write(Buffer.from('x'), 0, 1, 0), (e: NfsError) => e.code === 'ENOSPC' && e.syscall === 'write' && e.path === 'full' && e.errno === -28);
    await h.write(Buffer.from('y'), 0, 1, 0); // reported once
    await h.close();
  });

  test('an error of the final writeback rejects close(), and the handle is closed anyway', async () => {
    const s = await server();
    s.hooks.write = () => nfsstat3.NFS3ERR_DQUOT;
    const c = await client(s);
    const h = await c.open('quota', 'w');
    await h.write(Buffer.alloc(1000, 2), 0, 1000, 5000);
    await assert.rejects(h.close(), (e: NfsError) => e.code === 'EDQUOT' && e.syscall === 'close');
    await assert.rejects(h.write(Buffer.alloc(1)), (e: NfsError) => e.code === 'EBADF');
    assert.equal(c.stats().writeback.dirtyBytes, 0, 'failed data is dropped, memory returned');
  });

  test('sync() reports ESTALE for a file removed on the server, and every handle hears it', async () => {
    const s = await server();
    const c = await client(s);
    await c.writeFile('doomed', 'x');
    const h1 = await c.open('doomed', 'r+');
    const h2 = await c.open('doomed', 'r+');
    s.files.delete(s.file('doomed')!.id);
    await h1.write(Buffer.alloc(10), 0, 10, 0);
    await assert.rejects(h1.sync(), (e: NfsError) => e.code === 'ESTALE' && e.syscall === 'fsync');
    await assert.rejects(h2.close(), (e: NfsError) => e.code === 'ESTALE' && e.syscall === 'close');
    await h1.close();
  });
});

describe('dirty limits', () => {
  test('writers wait at the hard limit; memory never passes it; all data arrives', async () => {
    const s = await server();
    s.hooks.write = () => sleep(1).then(() => undefined); // a slow server
    const hard = MiB;
    const c = await client(s, '', { dirty: { hard, background: hard / 4 } });
    const files = ['w0', 'w1', 'w2', 'w3'];
    const payloads = files.map(() => randomBytes(6 * MiB));
    let maxSeen = 0;
    const sampler = setInterval(() => (maxSeen = Math.max(maxSeen, c.accountant.used)), 1);
    try {
      await Promise.all(
        files.map(async (name, i) => {
          const h = await c.open(name, 'w');
          const data = payloads[i]!;
          for (let off = 0; off < data.length; off += 48 * 1024) {
            const n = Math.min(48 * 1024, data.length - off);
            await h.write(data, off, n, off);
            maxSeen = Math.max(maxSeen, c.accountant.used);
          }
          await h.close();
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const st = c.stats().writeback;
    assert.ok(st.peakDirtyBytes <= hard, `peak ${st.peakDirtyBytes} > ${hard}`);
    assert.ok(maxSeen <= hard);
    assert.ok(st.throttled > 0, 'writers had to wait');
    assert.equal(st.dirtyBytes, 0);
    files.forEach((name, i) => assert.ok(s.file(name)!.stable.equals(payloads[i]!), `${name} complete`));
  });

  test('over the background limit, COMMITs go out while WRITEs keep flowing; a new verifier then resends', async () => {
    const s = await server();
    const hard = 8 * MiB;
    let commits = 0;
    let writesDuringCommit = 0;
    s.hooks.commit = async () => {
      commits++;
      const before = s.calls.WRITE ?? 0;
      await sleep(30); // a server slow to sync
      writesDuringCommit = Math.max(writesDuringCommit, (s.calls.WRITE ?? 0) - before);
      if (commits === 2) s.crash(); // the data of this COMMIT's window is lost: new verifier
    };
    const c = await client(s, '', { wsize: 256 * 1024, dirty: { hard } });
    const data = randomBytes(48 * MiB);
    const h = await c.open('stream', 'w');
    for (let off = 0; off < data.length; off += MiB) await h.write(data, off, MiB, off);
    await h.close();
    const st = c.stats().writeback;
    assert.ok(s.file('stream')!.stable.equals(data), 'the committed file is complete');
    assert.ok(writesDuringCommit > 0, 'some WRITEs were answered while a COMMIT was pending');
    assert.ok(st.commits >= 4, `commits: ${st.commits}`);
    assert.ok(st.verifierMismatches >= 1 && st.commitResentBytes > 0, 'ranges of the lost window sent again');
    assert.ok(st.peakDirtyBytes <= hard, `peak ${st.peakDirtyBytes} > ${hard}`);
    assert.equal(st.dirtyBytes, 0, 'nothing left charged');
  });

  test('an accountant shared by two clients bounds both', async () => {
    const s = await server();
    const first = await client(s, '', { dirty: { hard: 2 * MiB } });
    const second = await client(s, '', { dirty: first.accountant });
    const a = randomBytes(5 * MiB);
    const b = randomBytes(5 * MiB);
    await Promise.all([first.writeFile('sa', a), second.writeFile('sb', b)]);
    assert.ok(first.accountant.peak <= 2 * MiB);
    assert.ok(s.file('sa')!.stable.equals(a) && s.file('sb')!.stable.equals(b));
  });
});

describe('connecting', () => {
  test('ports from the portmapper when the URL gives none', async () => {
    const s = await server();
    const c = await client(s, '', { nfsPort: undefined, mountPort: undefined, portmapPort: s.port });
    assert.equal(c.nfsPort, s.port);
    assert.equal(c.mountPort, s.port);
    await c.writeFile('pm', 'ok');
    assert.equal(s.file('pm')!.stable.toString(), 'ok');
  });

  test('AUTH_SYS with the URL uid and gid', async () => {
    const s = await server();
    await client(s, 'uid=1234&gid=5678');
    assert.ok(s.peers.some((p) => p.uid === 1234 && p.gid === 5678));
  });

  test('a reserved source port as root', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async () => {
    const s = await server();
    await client(s);
    assert.ok(s.peers.every((p) => p.port < 1024), `ports ${s.peers.map((p) => p.port)}`);
    const unreserved = await client(s, '', { reservedPort: false });
    void unreserved;
    assert.ok(s.peers.some((p) => p.port >= 1024));
  });

  test('a path that is not exported fails with a Node-style error', async () => {
    const s = await server();
    await assert.rejects(connect(`nfs://127.0.0.1/nope?nfsport=${s.port}&mountport=${s.port}`), (e: NfsError) => e.code === 'ENOENT' && e.syscall === 'mount');
  });

  test('soft: a call with no answer fails with ETIMEDOUT', async () => {
    const s = await server();
    s.addFile('slow', Buffer.alloc(10));
    s.hooks.read = () => new Promise<undefined>(() => undefined);
    const c = await client(s, 'soft&timeo=3');
    const t0 = Date.now();
    await assert.rejects(c.readFile('slow'), (e: NfsError) => e.code === 'ETIMEDOUT' && e.syscall === 'read');
    assert.ok(Date.now() - t0 < 5000);
  });

  test('hard: a call waits through a server restart', async () => {
    const s = await server();
    const c = await client(s);
    await c.writeFile('kept', 'survives');
    await s.stop();
    const reading = c.readFile('kept', 'utf8');
    await sleep(400);
    await s.start(s.port);
    assert.equal(await reading, 'survives');
  });

  test('NFS3ERR_JUKEBOX is retried after a delay', async () => {
    const s = await server();
    const c = await client(s, 'actimeo=0');
    let n = 0;
    s.hooks.getattr = () => (n++ < 2 ? nfsstat3.NFS3ERR_JUKEBOX : undefined);
    const st = await c.stat('.');
    assert.ok(st.isDirectory());
    assert.ok(c.stats().jukeboxRetries >= 2);
  });

  test('a READ answered NFS3ERR_JUKEBOX is sent again and returns the data', async () => {
    const s = await server();
    s.addFile('busy', Buffer.from('data after a wait'));
    const c = await client(s);
    let n = 0;
    s.hooks.read = () => (n++ < 2 ? nfsstat3.NFS3ERR_JUKEBOX : undefined);
    const h = await c.open('busy', 'r');
    const buf = Buffer.alloc(64);
    // Not sequential from 0: an uncached READ of its own, whose decoder throws on the status.
    const { bytesRead } = await h.read(buf, 0, 64, 5);
    assert.equal(buf.subarray(0, bytesRead).toString(), 'after a wait');
    assert.equal(n, 3);
    assert.equal(c.stats().jukeboxRetries, 2);
    await h.close();
  });
});

describe('mounting below the export', () => {
  test('MNT of the exported prefix, then LOOKUP of the rest (which must be a directory)', async () => {
    const s = await server();
    s.addFile('plain', Buffer.from('x'));
    // The fake server only mounts its export itself: the client must find the prefix.
    await assert.rejects(connect(`nfs://127.0.0.1${s.exportPath}/plain?nfsport=${s.port}&mountport=${s.port}`), (e: NfsError) => e.code === 'ENOTDIR' && e.syscall === 'mount');
    assert.ok((s.calls.MNT ?? 0) >= 2, 'the whole path first, then the export');
    await assert.rejects(connect(`nfs://127.0.0.1${s.exportPath}/none?nfsport=${s.port}&mountport=${s.port}`), (e: NfsError) => e.code === 'ENOENT');
  });
});

describe('random operations against a model (fsx-style)', () => {
  test('writes, reads, truncates, syncs, reopens and crashes at COMMIT keep the file right', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const s = await server();
      s.wtmax = 64 * 1024; // small WRITEs: many chunks, many records
      let crashNext = false;
      s.hooks.commit = () => {
        if (crashNext) {
          crashNext = false;
          s.crash();
        }
      };
      const hard = 256 * 1024;
      const c = await client(s, '', { pageSize: 4096, dirty: { hard, background: 64 * 1024 }, writebackDelayMs: 0 });
      await fsx(c, 'fsx', {
        seed,
        ops: 400,
        committed: async () => s.file('fsx')!.stable,
        beforeSync: (random) => (crashNext = random() < 0.5),
      });
      const st = c.stats().writeback;
      assert.ok(st.peakDirtyBytes <= hard);
      assert.equal(st.dirtyBytes, 0);
    }
  });
});
