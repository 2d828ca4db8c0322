import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient } from '../../src/rpc/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { PMAP_VERS_TABLE, RPCBVERS_TABLE, RPCBVERS4_TABLE } from '../../src/proto/portmap.gen.js';
import type { VersionTable } from '../../src/proto/runtime.js';
import { freePort } from '../peers/ports.js';
import { run } from '../peers/proc.js';
import { missing, notRoot, firstReason } from '../peers/tools.js';
import { missingCapture, startCapture, analyzeCapture } from '../peers/tshark.js';

let server: RunningServer;
let pmPort: number;
const TEST_PROG = 0x2000_0777;

before(async () => {
  pmPort = await freePort();
  server = await startServer({ nfsPort: 0, portmapPort: pmPort });
  // A program of our own, so the table holds more than the portmapper itself.
  server.rpc.register({ prog: TEST_PROG, vers: 1, procedures: new Map([[0, { name: 'NULL', handler: () => undefined }]]) });
});
after(() => server.close());

function call<T extends VersionTable>(client: RpcClient, table: T, proc: number, args?: unknown): Promise<unknown> {
  const codec = table.procedures[proc]!;
  return client.call(proc, (w) => codec.encodeArgs(w, args), codec.decodeRes, { prog: table.prog, vers: table.vers });
}

test('version 2: GETPORT, SET, UNSET and DUMP', async () => {
  const c = new RpcClient({ host: '127.0.0.1', port: pmPort, prog: 100000, vers: 2 });
  assert.equal(await call(c, PMAP_VERS_TABLE, 3, { prog: 100000, vers: 2, prot: 6, port: 0 }), pmPort);
  assert.equal(await call(c, PMAP_VERS_TABLE, 3, { prog: 1234567, vers: 1, prot: 6, port: 0 }), 0);
  assert.equal(await call(c, PMAP_VERS_TABLE, 1, { prog: TEST_PROG, vers: 1, prot: 6, port: server.nfsPort }), true);
  assert.equal(await call(c, PMAP_VERS_TABLE, 1, { prog: TEST_PROG, vers: 1, prot: 6, port: 1 }), false, 'already mapped');
  assert.equal(await call(c, PMAP_VERS_TABLE, 3, { prog: TEST_PROG, vers: 1, prot: 6, port: 0 }), server.nfsPort);
  const dump = (await call(c, PMAP_VERS_TABLE, 4)) as { map: { prog: number; vers: number; port: number } }[];
  assert.ok(dump.some((e) => e.map.prog === TEST_PROG && e.map.port === server.nfsPort));
  assert.deepEqual(dump.filter((e) => e.map.prog === 100000).map((e) => e.map.vers).sort(), [2, 3, 4]);
  assert.equal(await call(c, PMAP_VERS_TABLE, 2, { prog: TEST_PROG, vers: 1, prot: 6, port: 0 }), true);
  assert.equal(await call(c, PMAP_VERS_TABLE, 3, { prog: TEST_PROG, vers: 1, prot: 6, port: 0 }), 0);
  c.close();
});

test('rpcbind versions 3 and 4: GETADDR with universal addresses, DUMP, GETVERSADDR', async () => {
  const c = new RpcClient({ host: '127.0.0.1', port: pmPort, prog: 100000, vers: 3 });
  const q = { r_prog: 100000, r_vers: 2, r_netid: 'tcp', r_addr: '', r_owner: '' };
  const uaddr = `127.0.0.1.${pmPort >> 8}.${pmPort & 255}`;
  assert.equal(await call(c, RPCBVERS_TABLE, 3, q), uaddr);
  assert.equal(await call(c, RPCBVERS4_TABLE, 9, { ...q, r_vers: 4 }), uaddr);
  assert.equal(await call(c, RPCBVERS4_TABLE, 9, { ...q, r_vers: 9 }), '', 'GETVERSADDR wants the exact version');
  const dump = (await call(c, RPCBVERS4_TABLE, 4)) as { rpcb_map: { r_prog: number; r_netid: string } }[];
  assert.ok(dump.some((e) => e.rpcb_map.r_prog === 100000 && e.rpcb_map.r_netid === 'tcp'));
  c.close();
});

test('tshark decodes a portmapper exchange as RPC/portmap with no malformed frames', { skip: missingCapture() }, async () => {
  const capture = await startCapture({ ports: [pmPort] });
  try {
    const c = new RpcClient({ host: '127.0.0.1', port: pmPort, prog: 100000, vers: 2 });
    await call(c, PMAP_VERS_TABLE, 0);
    await call(c, PMAP_VERS_TABLE, 3, { prog: 100000, vers: 2, prot: 6, port: 0 });
    await call(c, PMAP_VERS_TABLE, 4);
    await call(c, RPCBVERS_TABLE, 3, { r_prog: 100000, r_vers: 3, r_netid: 'tcp', r_addr: '', r_owner: '' });
    await call(c, RPCBVERS4_TABLE, 4);
    c.close();
    const a = await analyzeCapture(await capture.stop(), { rpcPorts: [pmPort] });
    assert.deepEqual(a.malformed, []);
    assert.deepEqual(a.rpcErrors, []);
    assert.ok(a.protocols.has('portmap'), `protocols seen: ${[...a.protocols].join(',')}`);
    assert.equal(a.procedures.get('PORTMAP2 GETPORT')?.replies, 1);
    assert.equal(a.procedures.get('PORTMAP2 DUMP')?.replies, 1);
    assert.equal(a.procedures.get('PORTMAP4 DUMP')?.replies, 1);
  } finally {
    await capture.remove();
  }
});

// Debian's rpcinfo always asks the portmapper on port 111 first (even with
// -n), so it runs against `tsnfs serve` on 111 inside a network namespace.
test('rpcinfo -p and rpcinfo -T tcp work against `tsnfs serve` on port 111', {
  skip: firstReason(missing('rpcinfo'), notRoot('network namespaces need root')),
}, async () => {
  const ns = `tsnfs-pm-${process.pid}`;
  const add = await run('ip', ['netns', 'add', ns]);
  assert.equal(add.code, 0, add.stderr);
  let serverProc: ReturnType<typeof spawn> | undefined;
  const exportDir = await mkdtemp(join(tmpdir(), 'tsnfs-pm-'));
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    serverProc = spawn('ip', ['netns', 'exec', ns, process.execPath, cli, 'serve', '--port', '2049', '--portmap-port', '111', '--log-level', 'warn', exportDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(serverProc.stdout!, 'data');
    const p = await run('ip', ['netns', 'exec', ns, 'rpcinfo', '-p', '127.0.0.1']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /100000\s+2\s+tcp\s+111\s+portmapper/);
    assert.match(p.stdout, /100000\s+4\s+tcp\s+111\s+portmapper/);
    const t = await run('ip', ['netns', 'exec', ns, 'rpcinfo', '-T', 'tcp', '127.0.0.1', '100000', '2']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /program 100000 version 2 ready and waiting/);
    const n = await run('ip', ['netns', 'exec', ns, 'rpcinfo', '-n', '111', '-t', '127.0.0.1', '100000', '4']);
    assert.match(n.stdout, /program 100000 version 4 ready and waiting/);
  } finally {
    serverProc?.kill();
    await run('ip', ['netns', 'del', ns]);
    await rm(exportDir, { recursive: true, force: true });
  }
});
