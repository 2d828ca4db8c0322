// The Linux kernel NFSv3 client (in a qemu VM, see run.ts and guest.sh)
// against `tsnfs serve`, run as users run it: the CLI, in a child process of
// its own, so that qemu's TCG threads do not starve it of this process's CPU.
//
// The export is `no_root_squash` (the guest writes as root) and `insecure`
// (qemu's user network NATs the guest's reserved source ports to ordinary
// ones). The guest mounts without `noacl`, so the kernel asks for NFSACL
// (program 100227), which tsnfs does not serve: PROG_UNAVAIL must be answered
// and the mount must carry on without ACLs. The server's metrics, scraped
// after the run, show what it answered.
//
// Run by `npm run test:kernel` (not by `npm test`): a run takes a minute or
// two of emulated CPU.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingKernelTools, runKernelClient, type KernelClientResult, type KernelStep } from './run.js';
import { isRunning, removeOnExit, spawnTracked, stopChild } from '../peers/proc.js';
import { firstReason, notRoot } from '../peers/tools.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TIMEOUT_MS = 240_000;

interface ServeProcess {
  nfsPort: number;
  mountPort: number;
  metricsUrl: string;
  /** Everything the server wrote to stderr (its logs). */
  logs(): string;
  stop(): Promise<number | null>;
}

/** Starts `tsnfs serve --exports FILE` on ephemeral ports and reads where it listens from what it prints. */
async function serve(exportsFile: string, stateDir: string): Promise<ServeProcess> {
  const args = [
    CLI, 'serve',
    '--exports', exportsFile,
    '--state-dir', stateDir,
    '--host', '127.0.0.1',
    '--port', '0',
    '--portmap-port', '0',
    '--metrics', '127.0.0.1:0',
    '--log-level', 'warn',
  ];
  const child = spawnTracked(process.execPath, args, { daemon: true });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 1 << 20) stderr += b.toString();
  });
  const deadline = Date.now() + 30_000;
  let m: RegExpExecArray | null = null;
  const pattern = /NFS\s+\S+:(\d+)\n\s*MOUNT\s+\S+:(\d+)\n\s*metrics\s+(http:\/\/\S+)/;
  while (!(m = pattern.exec(stdout))) {
    if (!isRunning(child)) throw new Error(`tsnfs serve exited (${child.exitCode ?? child.signalCode}):\n${stdout}${stderr}`);
    if (Date.now() > deadline) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`tsnfs serve did not say where it listens within 30 s:\n${stdout}${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // Above qemu, whose TCG threads take every core: the server answers the guest in time.
  try {
    if (process.getuid?.() === 0) setPriority(child.pid!, -5);
  } catch {
    // not allowed here: run at the same priority
  }
  return {
    nfsPort: Number(m[1]),
    mountPort: Number(m[2]),
    metricsUrl: m[3]!,
    logs: () => stderr,
    stop: () => stopChild(child, 'SIGTERM', 10_000),
  };
}

/** tsnfs_rpc_requests_total by "program version procedure status". */
async function requestCounts(metricsUrl: string): Promise<Map<string, number>> {
  const res = await fetch(metricsUrl);
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^tsnfs_rpc_requests_total\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out.set(`${labels.program} ${labels.version} ${labels.procedure} ${labels.status}`, Number(m[2]));
  }
  return out;
}

function report(r: KernelClientResult): string {
  const steps = r.steps.map((s) => `  ${s.ok ? 'ok  ' : 'FAIL'} ${s.name}${s.detail ? `: ${s.detail}` : ''}`).join('\n');
  const how = `run of ${(r.durationMs / 1000).toFixed(1)} s: guest verdict ${r.verdict ?? 'none'}${r.timedOut ? ', timed out' : ''}, qemu exit ${r.exitCode}`;
  return `${how}\n${steps}`;
}

const skip = firstReason(missingKernelTools(), notRoot('the kernel client test writes as root through a no_root_squash export; run it as root'));

test('the Linux kernel NFSv3 client against tsnfs serve', { skip, timeout: TIMEOUT_MS + 60_000 }, async (t) => {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-kernel-serve-')));
  removeOnExit(root);
  const exportDir = join(root, 'export');
  await mkdir(exportDir);
  const exportsFile = join(root, 'exports');
  // The guest reaches the host's loopback through qemu's NAT: its connections come from 127.0.0.1.
  await writeFile(exportsFile, `${exportDir} 127.0.0.1(rw,no_root_squash,insecure)\n`);
  const server = await serve(exportsFile, join(root, 'state'));
  let result: KernelClientResult | undefined;
  try {
    result = await runKernelClient({ host: '127.0.0.1', nfsPort: server.nfsPort, mountPort: server.mountPort, exportPath: exportDir, timeoutMs: TIMEOUT_MS });
    for (const line of report(result).split('\n')) t.diagnostic(line.trim());
    const logs = server.logs().trim();
    const consoleTail = result.console.split(/\r?\n/).slice(-40).join('\n');
    assert.ok(result.passed, `${report(result)}\n--- console (last 40 lines) ---\n${consoleTail}\n--- server log ---\n${logs}`);
    // The steps that matter ran and passed: a guest that stopped early cannot pass.
    for (const name of ['mount', 'write', 'readback', 'rename-dir', 'symlink', 'byte-names', 'truncate', 'manyfiles', 'persisted', 'rm-r', 'umount']) {
      assert.ok(result.steps.some((s) => s.name === name && s.ok), `step ${name} missing:\n${report(result)}`);
    }

    const counts = await requestCounts(server.metricsUrl);
    const seen = [...counts].map(([k, v]) => `${k}=${v}`).join('\n');
    // NFSACL (100227) asked and refused with PROG_UNAVAIL; the kernel then went on without ACLs.
    // Calls to a program that is not served are counted under its number.
    const unserved = (k: string): boolean => k.startsWith('100227 ');
    const acl = [...counts].filter(([k]) => unserved(k)).map(([k]) => k);
    assert.ok(acl.length > 0 && acl.every((k) => k.endsWith(' prog_unavail')), `NFSACL calls: ${JSON.stringify(acl)}\n${seen}`);
    // Nothing else failed at the RPC level.
    const failed = [...counts].filter(([k]) => !unserved(k) && !k.endsWith(' success'));
    assert.deepEqual(failed, [], seen);
    for (const proc of ['mount 3 MNT', 'nfs 3 WRITE', 'nfs 3 COMMIT', 'nfs 3 READ', 'nfs 3 READDIRPLUS', 'nfs 3 RENAME', 'nfs 3 LINK', 'nfs 3 SYMLINK', 'nfs 3 SETATTR', 'nfs 3 RMDIR']) {
      assert.ok((counts.get(`${proc} success`) ?? 0) > 0, `${proc} not answered:\n${seen}`);
    }
    // The guest removed its work directory: the export is empty again, on disk.
    assert.deepEqual(await readdir(exportDir), []);
  } finally {
    const code = await server.stop();
    if (code !== 0) t.diagnostic(`tsnfs serve did not exit 0 on SIGTERM (exit ${code})`);
    await rm(root, { recursive: true, force: true });
  }
});

