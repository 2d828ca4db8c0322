// The client against tsnfs's own server (startServer on a temp directory).
// While the server does not answer MNT and the NFS procedures yet, the suite
// is skipped with the reason the probe found.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { RpcClient } from '../../src/rpc/index.js';
import { MOUNT_V3_TABLE } from '../../src/proto/mount3.gen.js';
import { NFS_V3_TABLE } from '../../src/proto/nfs3.gen.js';
import { connect, ProgramClient } from '../../src/client/index.js';
import { apiSuite, type Target } from './suite.js';

/**
 * A server exporting a fresh temp dir. The rules are those of the ganesha
 * harness (rw, no_root_squash): the suite runs as root and checks ownership.
 */
async function tempServer(): Promise<{ server: RunningServer; dir: string; exportPath: string; state: string }> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-client-export-')));
  const state = await mkdtemp(join(tmpdir(), 'tsnfs-client-state-'));
  const exportsFile = join(state, 'exports');
  await writeFile(exportsFile, `${dir} 127.0.0.1(rw,no_root_squash,insecure)\n`);
  const server = await startServer({ exportsFile, stateDir: state, host: '127.0.0.1', nfsPort: 0, portmapPort: 0 });
  return { server, dir, exportPath: dir, state };
}

/** The same export and state directory served again on the same port (a restart). */
async function restart(t: { server: RunningServer; state: string }): Promise<RunningServer> {
  const port = t.server.nfsPort;
  await t.server.close();
  return startServer({ exportsFile: join(t.state, 'exports'), stateDir: t.state, host: '127.0.0.1', nfsPort: port, portmapPort: 0 });
}

/** False when the server mounts its export and answers GETATTR on the root, else why not. */
async function probe(): Promise<false | string> {
  let t: Awaited<ReturnType<typeof tempServer>> | undefined;
  const cred = { stamp: 1, machineName: 'probe', uid: 0, gid: 0, gids: [] };
  try {
    t = await tempServer();
    const mrpc = new RpcClient({ host: '127.0.0.1', port: t.server.mountPort, prog: MOUNT_V3_TABLE.prog, vers: MOUNT_V3_TABLE.vers, cred, timeoutMs: 3000, reconnect: false });
    const nrpc = new RpcClient({ host: '127.0.0.1', port: t.server.nfsPort, prog: NFS_V3_TABLE.prog, vers: NFS_V3_TABLE.vers, cred, timeoutMs: 3000, reconnect: false });
    try {
      const mnt = await new ProgramClient(mrpc, MOUNT_V3_TABLE).call('MNT', t.exportPath);
      if (mnt.fhs_status !== 0) return `tsnfs server refuses MNT ${t.exportPath} (mountstat3 ${mnt.fhs_status})`;
      const ga = await new ProgramClient(nrpc, NFS_V3_TABLE).call('GETATTR', { object: { data: mnt.mountinfo.fhandle } });
      if (ga.status !== 0) return `tsnfs server answers GETATTR of the root with nfsstat3 ${ga.status}`;
      return false;
    } finally {
      mrpc.close();
      nrpc.close();
    }
  } catch (err) {
    return `tsnfs server does not serve MOUNT v3 and NFSv3 yet (${(err as Error).message})`;
  } finally {
    await t?.server.close();
    if (t) {
      await rm(t.dir, { recursive: true, force: true });
      await rm(t.state, { recursive: true, force: true });
    }
  }
}

const skip = await probe();
let t: Awaited<ReturnType<typeof tempServer>> | undefined;

describe('client against the tsnfs server', { skip }, () => {
  before(async () => {
    t = await tempServer();
  });

  apiSuite('tsnfs', (): Target => ({ exportDir: t!.dir, exportPath: t!.exportPath, nfsPort: t!.server.nfsPort, mountPort: t!.server.mountPort }));

  describe('tsnfs: server restart', () => {
    test('unstable writes, restart (same state dir), close: resent, complete', async () => {
      const c = await connect(`nfs://127.0.0.1${t!.exportPath}?nfsport=${t!.server.nfsPort}&mountport=${t!.server.mountPort}`);
      try {
        const data = randomBytes(8 * 1024 * 1024);
        const h = await c.open('restart.bin', 'w');
        await h.write(data, 0, data.length, 0);
        const end = Date.now() + 10_000;
        while (c.stats().writes < 8 && Date.now() < end) await sleep(10);
        assert.ok(c.stats().writes >= 8, 'the WRITEs were answered before the restart');
        t!.server = await restart(t!);
        await h.close();
        assert.ok((await readFile(join(t!.dir, 'restart.bin'))).equals(data));
        const wb = c.stats().writeback;
        assert.equal(wb.verifierMismatches, 1, 'a new server instance has a new write verifier');
        assert.ok(wb.commitResends > 0);
      } finally {
        await c.close();
      }
    });
  });

  after(async () => {
    await t?.server.close();
    if (t) {
      await rm(t.dir, { recursive: true, force: true });
      await rm(t.state, { recursive: true, force: true });
    }
  });
});
