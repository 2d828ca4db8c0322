// The peer harness itself: nfs-ganesha serves a temp dir, libnfs-utils lists,
// reads and copies through it, dumpcap captures the exchange and tshark must
// decode all of it (MOUNT and NFS) with no malformed frame.

import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { missing, firstReason, which } from './tools.js';
import { freePort, freePorts } from './ports.js';
import { missingGanesha, startGanesha, type Ganesha } from './ganesha.js';
import { libnfsUrl, nfsCat, nfsCp, nfsLs, parseLs, type LibnfsTarget } from './libnfs.js';
import { analyzeCapture, assertEveryCallAnswered, callsOf, missingCapture, portFilter, startCapture, type Capture } from './tshark.js';
import { describeRun, removeOnExit } from './proc.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

describe('peer tools', () => {
  test('missing() names the absent tool and its package', () => {
    // Every known tool is either found or reported with its package.
    const r = missing('tshark', 'nfs-ls');
    if (r) assert.match(r, /not installed \(apt-get install [a-z -]+\)$/);
    if (which('tshark') && which('nfs-ls')) assert.equal(r, false);
    assert.equal(firstReason(false, 'b', 'c'), 'b');
  });

  test('freePort() returns distinct usable ports', async () => {
    const p = await freePort();
    assert.ok(p > 0 && p < 65536);
    const ps = await freePorts(3);
    assert.equal(new Set(ps).size, 3);
  });

  test('libnfsUrl() follows libnfs', () => {
    assert.equal(
      libnfsUrl({ exportPath: '/srv/x/', path: '/a/b.txt', nfsPort: 2049, mountPort: 20048, uid: 1000, gid: 100 }),
      'nfs://127.0.0.1/srv/x/a/b.txt?version=3&nfsport=2049&mountport=20048&uid=1000&gid=100',
    );
    assert.equal(libnfsUrl({ exportPath: '/e', nfsPort: 1, mountPort: 2 }), 'nfs://127.0.0.1/e?version=3&nfsport=1&mountport=2');
    assert.throws(() => libnfsUrl({ exportPath: '/e', path: 'a?b', nfsPort: 1, mountPort: 2 }));
    assert.equal(portFilter([1, 2]), 'tcp port 1 or tcp port 2');
  });
});

describe('analyzeCapture', { skip: missingCapture() }, () => {
  test('reports a malformed RPC call and counts procedures', async () => {
    const port = await freePort();
    const accepted = new Set<net.Socket>();
    const server = net.createServer((s) => {
      accepted.add(s);
      s.resume();
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
    const cap = await startCapture({ ports: [port] });
    let sock: net.Socket | null = null;
    try {
      sock = net.connect(port, '127.0.0.1');
      await once(sock, 'connect');
      // NFSv3 GETATTR (AUTH_NONE) whose file handle claims 64 bytes but has 4,
      // followed in the same record... by nothing: the record ends there.
      const words = [0x1234, 0, 2, 100003, 3, 1, 0, 0, 0, 0, 64];
      const body = Buffer.alloc(words.length * 4 + 4);
      words.forEach((w, i) => body.writeUInt32BE(w, i * 4));
      const mark = Buffer.alloc(4);
      mark.writeUInt32BE((0x80000000 | body.length) >>> 0);
      sock.end(Buffer.concat([mark, body]));
      await once(sock, 'close');
      const a = await analyzeCapture(await cap.stop(), { rpcPorts: [port] });
      assert.equal(a.malformed.length, 1, JSON.stringify(a.malformed));
      assert.match(a.malformed[0]!, /^frame \d+: /);
      assert.equal(callsOf(a, 'NFS3 GETATTR'), 1, JSON.stringify([...a.procedures.values()]));
      assert.equal(a.rpcCalls, 1);
      assert.equal(a.rpcReplies, 0);
      assert.deepEqual(a.unanswered.map((u) => [u.xid, u.name]), [[0x1234, 'NFS3 GETATTR']]);
      assert.deepEqual([...a.disturbedStreams], []);
      assert.deepEqual(a.orphanReplies, []);
      assert.throws(() => assertEveryCallAnswered(a, 'one call'), /calls with no reply on streams without retransmissions/);
      assert.ok(!a.protocols.has('udp'), 'capture markers must not be counted');
    } finally {
      sock?.destroy();
      for (const s of accepted) s.destroy();
      server.close();
      await cap.remove();
    }
  });
});

const skip = firstReason(missingGanesha(), missing('nfs-ls', 'nfs-cat', 'nfs-cp'), missingCapture());

describe('nfs-ganesha, libnfs-utils and tshark together', { skip }, () => {
  const CONTENT = 'hello from the export\n';
  let root = '';
  let ganesha: Ganesha | null = null;
  let capture: Capture | null = null;
  let target: LibnfsTarget;
  let failed = false;
  /** Wraps a test body so that a failure keeps the capture for inspection. */
  const kept = (fn: (t: TestContext) => Promise<void>) => async (t: TestContext) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tsnfs-harness-'));
    removeOnExit(root);
    const exportDir = join(root, 'export');
    await mkdir(join(exportDir, 'sub'), { recursive: true });
    await writeFile(join(exportDir, 'hello.txt'), CONTENT);
    await writeFile(join(exportDir, 'sub', 'deep.bin'), Buffer.from([0, 1, 2, 255, 10, 13]));
    const [nfsPort, mountPort] = await freePorts(2);
    // Capture first, so the whole exchange, MOUNT included, is in it.
    capture = await startCapture({ ports: [nfsPort!, mountPort!] });
    ganesha = await startGanesha({ exportDir, nfsPort, mountPort });
    target = { exportPath: ganesha.exportPath, nfsPort: ganesha.nfsPort, mountPort: ganesha.mountPort };
  });

  after(async () => {
    // Each step runs even if an earlier one throws.
    try {
      await capture?.stop();
    } finally {
      try {
        await ganesha?.stop();
      } finally {
        if (failed && capture) {
          process.stderr.write(`# capture kept for inspection: ${capture.keep()}\n`);
        } else {
          await capture?.remove();
        }
        if (root) await rm(root, { recursive: true, force: true });
      }
    }
  });

  test('nfs-ls lists the export', kept(async () => {
    const r = await nfsLs(target, [], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, describeRun(r));
    const entries = parseLs(r.stdout);
    const byName = new Map(entries.map((e) => [e.name, e]));
    assert.equal(byName.get('hello.txt')?.size, CONTENT.length, r.stdout);
    assert.match(byName.get('hello.txt')!.mode, /^-/);
    assert.match(byName.get('sub')?.mode ?? '', /^d/, r.stdout);
  }));

  test('nfs-ls -R walks subdirectories', kept(async () => {
    const r = await nfsLs(target, ['-R'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(parseLs(r.stdout).some((e) => e.name.endsWith('deep.bin') && e.size === 6), r.stdout);
  }));

  test('nfs-cat reads a file, binary included', kept(async () => {
    const r = await nfsCat({ ...target, path: 'hello.txt' }, { timeoutMs: 20_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(r.stdout, CONTENT);
    const b = await nfsCat({ ...target, path: 'sub/deep.bin' }, { timeoutMs: 20_000 });
    assert.equal(b.code, 0, describeRun(b));
    assert.deepEqual(b.stdoutBytes, Buffer.from([0, 1, 2, 255, 10, 13]));
  }));

  test('nfs-cp copies in and out', kept(async () => {
    const local = join(root, 'local.bin');
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    await writeFile(local, data);
    const put = await nfsCp(local, { ...target, path: 'copied.bin' });
    assert.equal(put.code, 0, describeRun(put));
    assert.deepEqual(await readFile(join(ganesha!.exportPath, 'copied.bin')), data);
    const back = join(root, 'back.bin');
    const get = await nfsCp({ ...target, path: 'copied.bin' }, back);
    assert.equal(get.code, 0, describeRun(get));
    assert.deepEqual(await readFile(back), data);
  }));

  test('tshark decodes MOUNT and NFS with no malformed frame', kept(async (t) => {
    const pcap = await capture!.stop();
    const stats = capture!.stats();
    assert.equal(stats.dropped, 0, `dumpcap dropped packets: ${JSON.stringify(stats)}`);
    const a = await analyzeCapture(pcap, { rpcPorts: [ganesha!.nfsPort, ganesha!.mountPort] });
    const summary = JSON.stringify({ frames: a.frames, rpcFrames: a.rpcFrames, protocols: [...a.protocols], procedures: [...a.procedures.keys()] });
    assert.deepEqual(a.malformed, [], summary);
    assert.deepEqual(a.rpcErrors, [], summary);
    assert.ok(a.protocols.has('rpc'), summary);
    assert.ok(a.protocols.has('mount'), summary);
    assert.ok(a.protocols.has('nfs'), summary);
    assert.ok(a.frames > a.rpcFrames && a.rpcFrames > 0, summary);
    // One MNT per libnfs command, and the procedures the commands need.
    assert.ok(callsOf(a, 'MOUNT3 MNT') >= 5, summary);
    for (const proc of ['NFS3 FSINFO', 'NFS3 READDIRPLUS', 'NFS3 READ', 'NFS3 CREATE', 'NFS3 WRITE']) {
      assert.ok(callsOf(a, proc) > 0, `${proc} not seen: ${summary}`);
    }
    const excused = assertEveryCallAnswered(a, summary);
    if (excused.length > 0) t.diagnostic(`messages not reassembled after a retransmission: ${JSON.stringify(excused)}`);
  }));
});

test('undoOnExit runs before the temp paths go, at exit and when killed by a signal', () => {
  const proc = fileURLToPath(new URL('./proc.js', import.meta.url));
  for (const ending of ['process.exit(0)', "process.kill(process.pid, 'SIGTERM')"]) {
    const top = mkdtempSync(join(tmpdir(), 'tsnfs-undo-'));
    try {
      const temp = join(top, 'temp');
      const marker = join(top, 'marker');
      const script = `
        import fs from 'node:fs';
        import { removeOnExit, undoOnExit } from ${JSON.stringify(proc)};
        fs.mkdirSync(${JSON.stringify(temp)});
        removeOnExit(${JSON.stringify(temp)});
        undoOnExit(() => fs.writeFileSync(${JSON.stringify(marker)}, String(fs.existsSync(${JSON.stringify(temp)}))));
        ${ending};
        setTimeout(() => {}, 10_000);`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.error, undefined, ending);
      assert.equal(readFileSync(marker, 'utf8'), 'true', `${ending}: the temp dir was still there when the undo ran`);
      assert.equal(existsSync(temp), false, `${ending}: and was removed after it`);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  }
});
