// kill -9 of a LOCALIO server in the middle of a stream of local writes,
// and a restart on the same port, state directory and registry (a new
// write verifier). The client loses its channel, falls back to RPC (the
// writes of the outage wait for the server, as a hard mount's do), proves
// the new instance local again and goes on through its descriptors. After
// fsync, the file on disk is exactly what was written: nothing an
// acknowledged fsync covers is lost, and no old write lands over a newer
// one (a second pass rewrites parts of the file while the server dies).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NfsClient } from '../../src/client/index.js';
import { makeDirs, noFdPassing, sha, startServerChild, type Dirs, type ServerChild } from './helpers.js';

const MiB = 1024 * 1024;
const SIZE = 48 * MiB;

describe('kill -9 of a LOCALIO server during writes', { skip: noFdPassing(), timeout: 300_000 }, () => {
  let d: Dirs;
  let srv: ServerChild | undefined;

  before(() => {
    d = makeDirs();
  });

  after(async () => {
    await srv?.stop();
    d.cleanup();
  });

  async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(5);
    }
  }

  test('the client falls back, goes local again, and every synced byte is on disk', async (t) => {
    srv = await startServerChild(d, { registry: d.registry });
    const port = srv.port;
    const metricsPort = srv.metricsPort;
    let c: NfsClient | undefined;
    try {
      // A small dirty limit: the writer keeps waiting on writeback, so local writes stream all along.
      c = await connect({ host: '127.0.0.1', nfsPort: port, mountPort: port, path: d.exp, localioRegistry: d.registry, dirty: { hard: 8 * MiB } });
      assert.equal(await c.localioReady(5000), true);
      const client = c;
      const expected = randomBytes(SIZE);
      const h = await client.open('stream.bin', 'w+');

      let restarted: Promise<void> | undefined;
      let writeBytesAtKill = 0;
      const killAt = 16 * MiB;
      const killAndRestart = async (): Promise<void> => {
        writeBytesAtKill = client.stats().localio!.writeBytes;
        await srv!.kill9();
        await sleep(300);
        srv = await startServerChild(d, { registry: d.registry, port, metricsPort });
      };

      // Pass 1: the whole file, sequentially; the server dies a third of the way in.
      for (let pos = 0; pos < SIZE; pos += MiB) {
        await h.write(expected, pos, MiB, pos);
        if (!restarted && client.stats().localio!.writeBytes >= killAt) restarted = killAndRestart();
      }
      // Pass 2: rewrite scattered 64 KiB pieces with other bytes while it comes back.
      for (let i = 0; i < 64; i++) {
        const pos = Math.floor(Math.random() * (SIZE / 65536)) * 65536;
        const piece = randomBytes(65536);
        piece.copy(expected, pos);
        await h.write(piece, 0, piece.length, pos);
      }
      assert.ok(restarted, 'the server was killed during the stream');
      await restarted;
      await h.sync();

      // Local again, and writing through descriptors again.
      await until(() => client.stats().localio!.state === 'local', 'LOCALIO to come back');
      const again = randomBytes(4 * MiB);
      again.copy(expected, 0);
      const beforeAgain = client.stats().localio!.writeBytes;
      await h.write(again, 0, again.length, 0);
      await h.sync();
      await h.close();
      const s = client.stats();
      const l = s.localio!;
      assert.ok(l.writeBytes >= beforeAgain + again.length, 'the writes after the restart went local');
      assert.ok(l.sessionsLost >= 1, 'the channel was lost');
      assert.ok(l.probeSuccesses >= 2, `probes ${l.probes}, successes ${l.probeSuccesses}`);
      assert.ok(writeBytesAtKill >= killAt);
      assert.ok(s.nfsOps['WRITE']! + s.nfsOps['COMMIT']! + l.fallbacks > 0, 'some IO went over RPC meanwhile');

      t.diagnostic(
        `local writes ${l.writes} (${l.writeBytes} bytes), killed at ${writeBytesAtKill}; sessions lost ${l.sessionsLost}; probes ${l.probes}/${l.probeSuccesses}; ` +
          `RPC WRITE ${s.nfsOps['WRITE']}, COMMIT ${s.nfsOps['COMMIT']}; fallbacks ${l.fallbacks}; verifier mismatches ${s.writeback.verifierMismatches}, resent ${s.writeback.commitResentBytes} bytes`,
      );
      const onDisk = fs.readFileSync(path.join(d.exp, 'stream.bin'));
      assert.equal(onDisk.length, SIZE);
      assert.equal(sha(onDisk), sha(expected), 'the file is what was written');
    } finally {
      await c?.close();
    }
  });
});
