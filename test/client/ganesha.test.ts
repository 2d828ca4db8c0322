// The client against nfs-ganesha (a reference NFSv3 server, VFS backend),
// plus what only a real server restart can show: unstable data survives a
// restart through the verifier check and resend.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingGanesha, startGanesha, type Ganesha } from '../peers/ganesha.js';
import { connect, getPort } from '../../src/client/index.js';
import { apiSuite, type Target } from './suite.js';

const skip = missingGanesha();
let g: Ganesha | undefined;
let exportDir = '';

describe('client against nfs-ganesha', { skip }, () => {
  before(async () => {
    exportDir = await mkdtemp(join(tmpdir(), 'tsnfs-client-ganesha-'));
    g = await startGanesha({ exportDir });
  });

  const target = (): Target => ({ exportDir: g!.exportPath, exportPath: g!.exportPath, nfsPort: g!.nfsPort, mountPort: g!.mountPort, fileidIsIno: true });
  apiSuite('ganesha', target); // registers an after() that closes its clients: before the server stops

  after(async () => {
    await g?.stop();
    if (exportDir) await rm(exportDir, { recursive: true, force: true });
  });

  describe('ganesha: server restart', () => {
    test('unstable writes, restart, sync: the client resends and the data is complete', async () => {
      const t = target();
      const c = await connect(`nfs://127.0.0.1${t.exportPath}?nfsport=${t.nfsPort}&mountport=${t.mountPort}`);
      try {
        const data = randomBytes(8 * 1024 * 1024);
        const h = await c.open('restart.bin', 'w');
        await h.write(data, 0, data.length, 0);
        // Full chunks go out as UNSTABLE WRITEs at once; wait for their replies.
        const end = Date.now() + 10_000;
        while (c.stats().writes < 8 && Date.now() < end) await sleep(10);
        assert.ok(c.stats().writes >= 8, 'the WRITEs were answered before the restart');
        const ports = { nfsPort: g!.nfsPort, mountPort: g!.mountPort };
        await g!.stop();
        g = await startGanesha({ exportDir, ...ports });
        await h.close(); // COMMIT meets the new server instance (and its new verifier)
        const st = c.stats();
        assert.ok(st.retransmits >= 0);
        const local = await readFile(join(t.exportDir, 'restart.bin'));
        assert.equal(createHash('sha256').update(local).digest('hex'), createHash('sha256').update(data).digest('hex'));
        // ganesha's verifier comes from its start time: a new instance has a new one.
        assert.equal(st.writeback.verifierMismatches, 1, JSON.stringify(st.writeback));
        assert.ok(st.writeback.commitResends > 0);
      } finally {
        await c.close();
      }
    });

    test('the portmapper knows the NFS and MOUNT ports', async () => {
      const port = await getPort('127.0.0.1', 100003, 3);
      assert.ok(port > 0);
      // Every ganesha on this host registers with the one portmapper: the last one started wins.
      if (port !== g!.nfsPort) return;
      const c = await connect(`nfs://127.0.0.1${g!.exportPath}`);
      try {
        assert.equal(c.nfsPort, g!.nfsPort);
        await c.writeFile('via-portmapper', 'ok');
        assert.equal(await c.readFile('via-portmapper', 'utf8'), 'ok');
      } finally {
        await c.close();
      }
    });
  });
});
