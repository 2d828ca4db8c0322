// nfs-ganesha as a reference NFSv3 server for tests and benchmarks.
//
//   const g = await startGanesha({ exportDir });
//   try { ... nfs://127.0.0.1${g.exportPath}?nfsport=${g.nfsPort}&mountport=${g.mountPort} ... }
//   finally { await g.stop(); }
//
// It runs in the foreground (`ganesha.nfsd -F`) from a generated config in a
// temp dir, on loopback only, TCP only, NLM and RQUOTA off, with the VFS
// backend (which needs root: open_by_handle_at). ganesha refuses to start
// unless it can register with a portmapper, so rpcbind is started first when
// nothing listens on 111; stop() stops it again if this module started it.
//
// Caveats:
// - Every ganesha registers NFS and MOUNT with the one portmapper: the last one
//   started wins, and any one that stops unregisters them. Reach instances by
//   their explicit ports (libnfs does with nfsport= and mountport=).
// - Attr_Expiration_Time > 0 makes ganesha cache directory entries and miss
//   changes made directly in the export directory: tests keep the default 0;
//   benchmarks may raise it to be fair to a caching server.

import { type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { freePorts, isListening, waitForPort } from './ports.js';
import { forgetTempPath, isRunning, removeOnExit, spawnTracked, stopChild } from './proc.js';
import { firstReason, missing, notRoot, which } from './tools.js';

export const GANESHA_PLUGINS_DIR = '/usr/lib/x86_64-linux-gnu/ganesha';
const PORTMAP_PORT = 111;

export interface GaneshaOptions {
  /** The directory to export; it must exist. Its real path is the MOUNT path. */
  exportDir: string;
  /** NFS port; a free one when absent. */
  nfsPort?: number;
  /** MOUNT port; a free one when absent. */
  mountPort?: number;
  /**
   * Seconds ganesha may trust cached attributes and directory entries. Default 0
   * (tests: changes made behind its back are seen at once); benchmarks may set
   * it higher, e.g. 60.
   */
  attrExpirationTime?: number;
  /** ganesha's log level (-N), default NIV_EVENT. */
  logLevel?: string;
  /** Extra NFS_CORE_PARAM settings, e.g. { Nb_Worker: 16 }. */
  coreParams?: Record<string, string | number>;
  /** Extra EXPORT settings, e.g. { MaxRead: 1048576 }. */
  exportParams?: Record<string, string | number>;
  /** How long to wait for the NFS port to accept connections; default 15 s. */
  startTimeoutMs?: number;
  /** Keep the temp dir (config, log) after stop(), for debugging. */
  keepFiles?: boolean;
}

export interface Ganesha {
  host: '127.0.0.1';
  nfsPort: number;
  mountPort: number;
  /** The path to MOUNT (the export directory's real path). */
  exportPath: string;
  pid: number;
  /** Temp dir with ganesha.conf and ganesha.log (removed by stop() unless keepFiles). */
  dir: string;
  configPath: string;
  logPath: string;
  /** True when this instance depends on an rpcbind that this module started. */
  startedRpcbind: boolean;
  /** ganesha's log so far ('' once the temp dir is removed). */
  log(): Promise<string>;
  /** Stops ganesha (and rpcbind when we started it and nobody else here uses it); removes temp files. Idempotent. */
  stop(): Promise<void>;
}

/** A one-line reason why nfs-ganesha cannot run here, or false. */
export function missingGanesha(): false | string {
  return firstReason(
    missing('ganesha.nfsd', 'rpcbind'),
    existsSync(join(GANESHA_PLUGINS_DIR, 'libfsalvfs.so'))
      ? false
      : `nfs-ganesha VFS backend not installed (apt-get install nfs-ganesha-vfs)`,
    notRoot('nfs-ganesha with the VFS backend needs root'),
  );
}

// ---- rpcbind, shared by every instance of this process ----

let rpcbind: ChildProcess | null = null;
let rpcbindUsers = 0;

/** Makes sure a portmapper listens on 111. True when it is (now) one this module started. */
async function acquireRpcbind(): Promise<boolean> {
  if (rpcbind && isRunning(rpcbind)) {
    rpcbindUsers++;
    return true;
  }
  rpcbind = null;
  if (await isListening(PORTMAP_PORT)) return false;
  const bin = which('rpcbind');
  if (!bin) throw new Error('rpcbind not installed (apt-get install rpcbind)');
  // Plain `rpcbind -f`: `-h 127.0.0.1` aborts with a double free on Debian 12.
  const child = spawnTracked(bin, ['-f'], { daemon: true });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout?.resume();
  try {
    await waitForPort(PORTMAP_PORT, {
      timeoutMs: 5000,
      abort: () => (isRunning(child) ? false : `rpcbind exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`),
    });
  } catch (e) {
    await stopChild(child, 'SIGKILL');
    // Another process may have started a portmapper in the meantime: use it.
    if (await isListening(PORTMAP_PORT)) return false;
    throw e;
  }
  rpcbind = child;
  rpcbindUsers = 1;
  return true;
}

async function releaseRpcbind(): Promise<void> {
  if (rpcbindUsers === 0) return;
  rpcbindUsers--;
  if (rpcbindUsers > 0 || !rpcbind) return;
  const child = rpcbind;
  rpcbind = null;
  await stopChild(child, 'SIGTERM', 3000);
}

// ---- config ----

function quote(s: string): string {
  if (/["\n\\]/.test(s)) throw new Error(`path not usable in a ganesha config: ${JSON.stringify(s)}`);
  return `"${s}"`;
}

function params(p: Record<string, string | number> | undefined, indent: string): string {
  if (!p) return '';
  return Object.entries(p)
    .map(([k, v]) => `${indent}${k} = ${v};\n`)
    .join('');
}

export function ganeshaConfig(o: {
  exportPath: string;
  nfsPort: number;
  mountPort: number;
  recoveryDir: string;
  attrExpirationTime: number;
  coreParams?: Record<string, string | number>;
  exportParams?: Record<string, string | number>;
}): string {
  return `NFS_CORE_PARAM {
  Protocols = 3, 4;
  Bind_addr = 127.0.0.1;
  NFS_Port = ${o.nfsPort};
  MNT_Port = ${o.mountPort};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
  Plugins_Dir = ${quote(GANESHA_PLUGINS_DIR)};
${params(o.coreParams, '  ')}}

NFS_KRB5 {
  Active_krb5 = false;
}

NFSv4 {
  Graceless = true;
  RecoveryRoot = ${quote(o.recoveryDir)};
}

EXPORT {
  Export_Id = 1;
  Path = ${quote(o.exportPath)};
  Pseudo = ${quote(o.exportPath)};
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = 3, 4;
  Transports = TCP;
  Attr_Expiration_Time = ${o.attrExpirationTime};
${params(o.exportParams, '  ')}  FSAL {
    Name = VFS;
  }
}
`;
}

/** The log lines worth showing when ganesha fails (its dbus and krb5 complaints are noise). */
function logExcerpt(log: string): string {
  const lines = log
    .split('\n')
    .filter((l) => /:(CRIT|FATAL|MAJ|WARN) :/.test(l) && !/DBUS|dbus|krb5|KRB5|gssapi|RADOS/.test(l))
    .map((l) => l.replace(/^.*?\] /, ''));
  return lines.slice(-8).join('\n');
}


// ---- one ganesha at a time on this host ----
//
// Every ganesha registers NFS and MOUNT with the one portmapper on port 111,
// and rpcbind refuses a second registration of the same program: two
// instances started at once (test files run in parallel) make one fail with
// "Cannot register NFS V3 on TCP". A lock directory, owned by a pid and
// taken over when that process is gone, serialises them across processes.

const LOCK_DIR = join(tmpdir(), 'tsnfs-ganesha.lock');
let lockTaken = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Taken at the first start and kept until this process exits, so that a
 * test that stops ganesha and starts it again (a restart test) cannot lose
 * its registrations to another process in between.
 */
async function acquireHostLock(timeoutMs = 15 * 60_000): Promise<void> {
  if (lockTaken) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      await writeFile(join(LOCK_DIR, 'pid'), String(process.pid));
      lockTaken = true;
      process.once('exit', () => rmSync(LOCK_DIR, { recursive: true, force: true }));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number(await readFile(join(LOCK_DIR, 'pid'), 'utf8').catch(() => ''));
    if (owner && !pidAlive(owner)) {
      await rm(LOCK_DIR, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another process (pid ${owner || '?'}) has held ${LOCK_DIR} for ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, owner ? 200 : 50));
  }
}

// ---- start/stop ----

async function removeNow(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  forgetTempPath(dir);
}

export async function startGanesha(opts: GaneshaOptions): Promise<Ganesha> {
  const reason = missingGanesha();
  if (reason) throw new Error(reason);
  await acquireHostLock();
  const exportPath = await realpath(opts.exportDir);
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-ganesha-'));
  if (!opts.keepFiles) removeOnExit(dir);
  const recoveryDir = join(dir, 'recovery');
  const configPath = join(dir, 'ganesha.conf');
  const logPath = join(dir, 'ganesha.log');
  const pidPath = join(dir, 'ganesha.pid');
  await mkdir(recoveryDir);

  let ourRpcbind = false;
  let child: ChildProcess | null = null;
  const fixedPorts = opts.nfsPort !== undefined && opts.mountPort !== undefined;
  const attempts = 3;
  let lastError: Error | null = null;
  let nfsPort = 0;
  let mountPort = 0;

  try {
    for (let attempt = 1; attempt <= attempts && !child; attempt++) {
      if (!ourRpcbind) ourRpcbind = await acquireRpcbind();
      const picked = await freePorts(2);
      nfsPort = opts.nfsPort ?? picked[0]!;
      mountPort = opts.mountPort ?? picked[1]!;
      if (nfsPort === mountPort) throw new Error(`nfsPort and mountPort are both ${nfsPort}`);
      for (const p of [nfsPort, mountPort]) {
        // Without this, a stranger on the port would look like ganesha being ready.
        if (await isListening(p)) throw new Error(`port ${p} is already in use`);
      }
      await writeFile(
        configPath,
        ganeshaConfig({
          exportPath,
          nfsPort,
          mountPort,
          recoveryDir,
          attrExpirationTime: opts.attrExpirationTime ?? 0,
          coreParams: opts.coreParams,
          exportParams: opts.exportParams,
        }),
      );
      await rm(logPath, { force: true });
      const proc = spawnTracked(which('ganesha.nfsd')!, [
        '-F',
        '-f', configPath,
        '-L', logPath,
        '-p', pidPath,
        '-N', opts.logLevel ?? 'NIV_EVENT',
      ], { daemon: true });
      let output = '';
      const collect = (b: Buffer) => {
        if (output.length < 65536) output += b.toString();
      };
      proc.stdout?.on('data', collect);
      proc.stderr?.on('data', collect);
      const exited = () => (isRunning(proc) ? false : `ganesha.nfsd exited (${proc.exitCode ?? proc.signalCode})`);
      try {
        await waitForPort(nfsPort, { timeoutMs: opts.startTimeoutMs ?? 15_000, abort: exited });
        await waitForPort(mountPort, { timeoutMs: 5000, abort: exited });
        const why = exited();
        if (why) throw new Error(why);
        child = proc;
      } catch (e) {
        await stopChild(proc, 'SIGKILL');
        const log = await readFile(logPath, 'utf8').catch(() => '');
        const detail = [logExcerpt(log), output.trim()].filter(Boolean).join('\n');
        lastError = new Error(`${(e as Error).message} (attempt ${attempt}/${attempts}, ports ${nfsPort}/${mountPort})${detail ? '\n' + detail : ''}`);
        // A port taken between freePorts() and ganesha's bind, or a portmapper
        // that another process stopped under us: both deserve another try.
        if (fixedPorts && /Address already in use/.test(log)) break;
      }
    }
    if (!child) throw lastError ?? new Error('ganesha.nfsd did not start');
  } catch (e) {
    if (ourRpcbind) await releaseRpcbind();
    if (!opts.keepFiles) await removeNow(dir);
    throw e;
  }

  const proc = child;
  let stopping: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    nfsPort,
    mountPort,
    exportPath,
    pid: proc.pid!,
    dir,
    configPath,
    logPath,
    startedRpcbind: ourRpcbind,
    log: () => readFile(logPath, 'utf8').catch(() => ''),
    stop() {
      stopping ??= (async () => {
        try {
          await stopChild(proc, 'SIGTERM', 10_000);
        } finally {
          if (ourRpcbind) await releaseRpcbind();
          if (!opts.keepFiles) await removeNow(dir);
        }
      })();
      return stopping;
    },
  };
}
