// Debian's libnfs-utils (nfs-ls, nfs-cat, nfs-cp) against tsnfs: a client we
// did not write, over nfs://127.0.0.1/EXPORT/PATH?version=3&nfsport=P&mountport=M
// URLs (both ports given, so the portmapper is never asked).
//
// The server runs in this process (startServer) on a temp directory with an
// exports file. libnfs binds a reserved source port when it runs as root and
// an ordinary one otherwise: the export is `insecure` so both work, and
// `no_root_squash` so that root's copies land as root, as on the disk.
//
// What is checked: listings equal lstat() of the real tree (plain and -R),
// bytes read equal the bytes on disk, a 100 MiB copy in and out keeps its
// sha256, and one short session, captured on loopback, decodes in tshark with
// no malformed frame, no RPC error, and a reply for every call.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { nfsCat, nfsCp, nfsLs, parseLs, type LibnfsTarget, type LsEntry } from '../peers/libnfs.js';
import { describeRun, removeOnExit } from '../peers/proc.js';
import { analyzeCapture, assertEveryCallAnswered, callsOf, missingCapture, startCapture } from '../peers/tshark.js';
import { missing } from '../peers/tools.js';

const MiB = 1 << 20;
const BIG = 100 * MiB;
/** The captured session copies this much each way: a capture of the 100 MiB copy would be hundreds of MB. */
const CAPTURED = 4 * MiB;

const TEXT = 'hello from tsnfs\nsecond line, no newline at the end';
/** Every byte value, then random bytes past a 64 KiB boundary (more than one READ at libnfs's smallest size). */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(70_000)]);

/** The mode column as nfs-ls prints it: type, then rwx for user, group, other. */
function modeString(st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : '-';
  let s = type;
  for (const shift of [6, 3, 0]) {
    const bits = (st.mode >> shift) & 7;
    s += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
  }
  return s;
}

/** What nfs-ls should print for a directory: lstat() of each entry, `recursive` as -R names them. */
async function expectedListing(dir: string, recursive: boolean, prefix = ''): Promise<LsEntry[]> {
  const out: LsEntry[] = [];
  for (const name of await readdir(dir)) {
    const st = await lstat(join(dir, name));
    out.push({ mode: modeString(st), nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, name: prefix + name });
    if (recursive && st.isDirectory()) out.push(...(await expectedListing(join(dir, name), true, `${prefix}${name}/`)));
  }
  return sorted(out);
}

function sorted(entries: LsEntry[]): LsEntry[] {
  return [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Writes `size` random bytes to `path` and returns their sha256. */
async function randomFile(path: string, size: number): Promise<string> {
  const data = randomBytes(size);
  await writeFile(path, data);
  return createHash('sha256').update(data).digest('hex');
}

const mibps = (bytes: number, ms: number): string => `${((bytes / MiB) / (ms / 1000)).toFixed(0)} MiB/s`;

const skip = missing('nfs-ls', 'nfs-cat', 'nfs-cp');

describe('libnfs-utils against tsnfs', { skip }, () => {
  let root = '';
  let exportDir = '';
  let local = '';
  let server: RunningServer;
  let target: LibnfsTarget;
  const at = (path: string): LibnfsTarget => ({ ...target, path });

  before(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-libnfs-')));
    removeOnExit(root);
    exportDir = join(root, 'export');
    local = join(root, 'local');
    await mkdir(local);

    // The tree the listings are compared against: files, directories (one
    // large enough to take several READDIRPLUS replies), symlinks, odd names.
    await mkdir(join(exportDir, 'sub', 'deeper'), { recursive: true });
    await mkdir(join(exportDir, 'empty-dir'));
    await mkdir(join(exportDir, 'many'));
    await writeFile(join(exportDir, 'hello.txt'), TEXT);
    await writeFile(join(exportDir, 'data.bin'), BINARY);
    await writeFile(join(exportDir, 'empty'), '');
    await writeFile(join(exportDir, 'with space.txt'), 'spaced\n');
    await writeFile(join(exportDir, 'ünïcødé.txt'), 'utf-8 name\n');
    await writeFile(join(exportDir, 'sub', 'f.txt'), 'in sub\n', { mode: 0o640 });
    await writeFile(join(exportDir, 'sub', 'deeper', 'tool.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await symlink('hello.txt', join(exportDir, 'link'));
    await symlink('../hello.txt', join(exportDir, 'sub', 'up'));
    await symlink('/no/such/target', join(exportDir, 'sub', 'deeper', 'dangling'));
    for (let i = 0; i < 400; i++) await writeFile(join(exportDir, 'many', `entry-with-a-longish-name-${String(i).padStart(4, '0')}`), String(i));

    const exportsFile = join(root, 'exports');
    await writeFile(exportsFile, `# libnfs binds a reserved port as root and an ordinary one otherwise\n${exportDir} 127.0.0.1(rw,no_root_squash,insecure)\n`);
    server = await startServer({ exportsFile, stateDir: join(root, 'state'), host: '127.0.0.1', nfsPort: 0, portmapPort: 0 });
    target = { exportPath: exportDir, nfsPort: server.nfsPort, mountPort: server.mountPort };
  });

  after(async () => {
    await server?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  test('nfs-ls lists the export root as lstat() sees it', async () => {
    const r = await nfsLs(target, [], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(sorted(parseLs(r.stdout)), await expectedListing(exportDir, false), r.stdout);
  });

  test('nfs-ls -R walks the whole tree', async () => {
    const r = await nfsLs(target, ['-R'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, describeRun(r));
    const got = sorted(parseLs(r.stdout));
    const want = await expectedListing(exportDir, true);
    assert.equal(got.length, want.length, `${got.length} entries listed, ${want.length} on disk`);
    assert.deepEqual(got, want);
  });

  test('nfs-ls of a subdirectory and of an empty directory', async () => {
    const r = await nfsLs(at('sub/deeper'), [], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(sorted(parseLs(r.stdout)), await expectedListing(join(exportDir, 'sub', 'deeper'), false), r.stdout);
    const e = await nfsLs(at('empty-dir'), [], { timeoutMs: 30_000 });
    assert.equal(e.code, 0, describeRun(e));
    assert.deepEqual(parseLs(e.stdout), [], e.stdout);
  });

  test('nfs-cat reads text, binary and empty files byte for byte', async () => {
    const t = await nfsCat(at('hello.txt'));
    assert.equal(t.code, 0, describeRun(t));
    assert.equal(t.stdout, TEXT);
    const b = await nfsCat(at('sub/../data.bin'));
    assert.equal(b.code, 0, describeRun(b));
    assert.equal(b.stdoutBytes.length, BINARY.length);
    assert.ok(b.stdoutBytes.equals(BINARY), 'nfs-cat data.bin differs from the file');
    const e = await nfsCat(at('empty'));
    assert.equal(e.code, 0, describeRun(e));
    assert.equal(e.stdoutBytes.length, 0);
    const d = await nfsCat(at('sub/deeper/tool.sh'));
    assert.equal(d.code, 0, describeRun(d));
    assert.ok(d.stdoutBytes.equals(await readFile(join(exportDir, 'sub', 'deeper', 'tool.sh'))));
  });

  test('nfs-cat of a missing file fails', async () => {
    const r = await nfsCat(at('no-such-file'));
    assert.notEqual(r.code, 0, describeRun(r));
  });

  test('nfs-cp copies 100 MiB in and out with the same sha256', async (t) => {
    const src = join(local, 'big.src');
    const sum = await randomFile(src, BIG);

    const put = await nfsCp(src, at('big-in.bin'), { timeoutMs: 180_000 });
    assert.equal(put.code, 0, describeRun(put));
    const onDisk = join(exportDir, 'big-in.bin');
    assert.equal((await lstat(onDisk)).size, BIG);
    assert.equal(await sha256File(onDisk), sum, 'the file in the export differs from the one copied in');

    const back = join(local, 'big.back');
    const get = await nfsCp(at('big-in.bin'), back, { timeoutMs: 180_000 });
    assert.equal(get.code, 0, describeRun(get));
    assert.equal((await lstat(back)).size, BIG);
    assert.equal(await sha256File(back), sum, 'the file copied out differs from the one copied in');
    t.diagnostic(`100 MiB in: ${Math.round(put.durationMs)} ms (${mibps(BIG, put.durationMs)}), out: ${Math.round(get.durationMs)} ms (${mibps(BIG, get.durationMs)})`);

    // nfs-cp creates with EXCLUSIVE: a second copy to the same name must fail and leave the file alone.
    const again = await nfsCp(join(exportDir, 'hello.txt'), at('big-in.bin'), { timeoutMs: 30_000 });
    assert.notEqual(again.code, 0, describeRun(again));
    assert.equal((await lstat(onDisk)).size, BIG);

    await rm(src);
    await rm(back);
    await rm(onDisk);
  });

  test('a captured session decodes cleanly in tshark', { skip: missingCapture() }, async (t) => {
    const ports = [...new Set([server.nfsPort, server.mountPort])];
    const capture = await startCapture({ ports });
    let keep = false;
    try {
      const src = join(local, 'captured.src');
      const sum = await randomFile(src, CAPTURED);
      const ls = await nfsLs(target, ['-R'], { timeoutMs: 30_000 });
      assert.equal(ls.code, 0, describeRun(ls));
      const cat = await nfsCat(at('data.bin'));
      assert.equal(cat.code, 0, describeRun(cat));
      assert.ok(cat.stdoutBytes.equals(BINARY));
      const put = await nfsCp(src, at('captured.bin'));
      assert.equal(put.code, 0, describeRun(put));
      const back = join(local, 'captured.back');
      const get = await nfsCp(at('captured.bin'), back);
      assert.equal(get.code, 0, describeRun(get));
      assert.equal(await sha256File(back), sum);
      assert.equal(await sha256File(join(exportDir, 'captured.bin')), sum);

      const pcap = await capture.stop();
      const stats = capture.stats();
      assert.equal(stats.dropped, 0, `dumpcap dropped packets: ${JSON.stringify(stats)}`);
      const a = await analyzeCapture(pcap, { rpcPorts: ports });
      const counts = [...a.procedures.values()].map((c) => `${c.name} ${c.calls}/${c.replies}`).join(', ');
      const summary = `${a.frames} frames, ${a.rpcFrames} with RPC, ${a.rpcCalls} calls, ${a.rpcReplies} replies; ${counts}`;
      t.diagnostic(summary);
      try {
        assert.deepEqual(a.malformed, [], summary);
        assert.deepEqual(a.rpcErrors, [], summary);
        for (const p of ['rpc', 'mount', 'nfs']) assert.ok(a.protocols.has(p), `${p} not decoded: ${summary}`);
        // One MNT per command; the procedures that listing, reading and copying
        // take (nfs-cp in: an EXCLUSIVE CREATE, then SETATTR for the mode, WRITEs and a COMMIT).
        assert.ok(callsOf(a, 'MOUNT3 MNT') >= 4, summary);
        for (const proc of ['NFS3 FSINFO', 'NFS3 GETATTR', 'NFS3 LOOKUP', 'NFS3 READDIRPLUS', 'NFS3 READ', 'NFS3 CREATE', 'NFS3 SETATTR', 'NFS3 WRITE', 'NFS3 COMMIT']) {
          assert.ok(callsOf(a, proc) > 0, `${proc} not seen: ${summary}`);
        }
        // The commands checked the data they got, so a reply tshark could not
        // reassemble after a loopback retransmission is excused, and reported.
        const excused = assertEveryCallAnswered(a, summary);
        if (excused.length > 0) t.diagnostic(`messages not reassembled after a retransmission: ${JSON.stringify(excused)}`);
      } catch (e) {
        keep = true;
        throw e;
      }
    } finally {
      await capture.stop().catch(() => undefined);
      if (keep) t.diagnostic(`capture kept for inspection: ${capture.keep()}`);
      else await capture.remove();
    }
  });
});
