// What the LOCALIO tests share: scratch directories (an export, a registry,
// a state directory), `tsnfs serve` as a child process, and the client
// child (client-child.ts) driven over stdin/stdout.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fdPassingAvailable, nativeStatus } from '../../src/native/index.js';
import type { LocalioClientStats } from '../../src/client/index.js';
import { freePorts, waitForPort } from '../peers/ports.js';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const CLIENT_CHILD = fileURLToPath(new URL('./client-child.js', import.meta.url));

export const isRoot = process.getuid?.() === 0;

/** Why descriptors cannot be passed here (a skip reason), or false. */
export function noFdPassing(): string | false {
  return fdPassingAvailable() ? false : `descriptor passing unavailable (native addon: ${nativeStatus().reason ?? 'not loaded'})`;
}

export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface Dirs {
  root: string;
  /** The exported directory (mode 0777: squashed users may create in it). */
  exp: string;
  /** A registry directory (0700). */
  registry: string;
  state: string;
  cleanup(): void;
}

/** Fresh scratch directories under the system's temporary directory (world-searchable, so other uids reach them). */
export function makeDirs(prefix = 'tsnfs-localio-'): Dirs {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(root, 0o755);
  const exp = path.join(root, 'export');
  const registry = path.join(root, 'registry');
  const state = path.join(root, 'state');
  fs.mkdirSync(exp);
  fs.chmodSync(exp, 0o777);
  fs.mkdirSync(registry, { mode: 0o700 });
  return { root, exp, registry, state, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface ServerChild {
  readonly child: ChildProcess;
  readonly port: number;
  readonly metricsPort: number;
  /** NFSv3 calls the server answered, by procedure (from its metrics). */
  ops(): Promise<Record<string, number>>;
  /** tsnfs_localio_* counters from the metrics. */
  metrics(): Promise<string>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
  stderr(): string;
}

export interface ServerChildOptions {
  /** An exports(5) file's text; default: the export directory to everyone, rw, no_root_squash, insecure. */
  exportsText?: string;
  registry?: string;
  port?: number;
  metricsPort?: number;
  host?: string;
  /** Run inside this network namespace (ip netns exec). */
  netns?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

/** `tsnfs serve` in a child process; resolves once it listens. */
export async function startServerChild(d: Dirs, o: ServerChildOptions = {}): Promise<ServerChild> {
  const exportsFile = path.join(d.root, `exports-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(exportsFile, o.exportsText ?? `${d.exp} *(rw,no_root_squash,insecure)\n`);
  const [p1, p2] = (await freePorts(2)) as [number, number];
  const port = o.port ?? p1;
  const metricsPort = o.metricsPort ?? p2;
  const host = o.host ?? '127.0.0.1';
  const args = [MAIN, 'serve', '--exports', exportsFile, '--host', host, '--port', String(port), '--portmap-port', '0', '--state-dir', d.state, '--log-level', 'warn', '--metrics', `${host}:${metricsPort}`];
  if (o.registry !== undefined) args.push('--localio-registry', o.registry);
  args.push(...(o.extraArgs ?? []));
  const [cmd, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...o.env } });
  live.add(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.once('exit', () => live.delete(child));
  const abort = (): string | false => (child.exitCode !== null || child.signalCode !== null ? `tsnfs serve exited (${child.exitCode ?? child.signalCode}): ${err}` : false);
  if (o.netns) {
    // Not reachable from here: wait for its listening socket inside the namespace.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const why = abort();
      if (why) throw new Error(why);
      const out = await execText('ip', ['netns', 'exec', o.netns, 'ss', '-ltnH', `sport = :${port}`]).catch(() => '');
      if (out.trim() !== '') break;
      if (Date.now() > deadline) throw new Error('tsnfs serve did not listen in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  } else {
    await waitForPort(port, { host, timeoutMs: 15_000, abort });
  }
  const metrics = async (): Promise<string> => (await fetch(`http://${host}:${metricsPort}/metrics`)).text();
  return {
    child,
    port,
    metricsPort,
    metrics,
    async ops() {
      const out: Record<string, number> = {};
      for (const line of (await metrics()).split('\n')) {
        const m = /^tsnfs_rpc_requests_total\{program="nfs",version="3",procedure="([A-Z]+)",status="[a-z_]+"\} (\d+)/.exec(line);
        if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
      }
      return out;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    stderr: () => err,
  };
}

export function execText(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

// ---------------------------------------------------------------- client child

export interface ChildAnswer {
  ok?: unknown;
  error?: { code: string | null; message: string };
}

export interface ClientChildOptions {
  /** Run as this uid/gid (setpriv, no supplementary groups). */
  uid?: number;
  gid?: number;
  netns?: string;
  env?: NodeJS.ProcessEnv;
}

export class ClientChild {
  readonly child: ChildProcess;
  private readonly answers: ((a: ChildAnswer) => void)[] = [];
  private err = '';

  constructor(o: ClientChildOptions = {}) {
    let argv = [process.execPath, CLIENT_CHILD];
    if (o.uid !== undefined) argv = ['setpriv', `--reuid=${o.uid}`, `--regid=${o.gid ?? o.uid}`, '--clear-groups', ...argv];
    if (o.netns) argv = ['ip', 'netns', 'exec', o.netns, ...argv];
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    live.add(this.child);
    this.child.once('exit', () => {
      live.delete(this.child);
      for (const a of this.answers.splice(0)) a({ error: { code: 'EXITED', message: `client child exited: ${this.err}` } });
    });
    this.child.stderr!.on('data', (b: Buffer) => (this.err += b.toString()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const a = this.answers.shift();
      a?.(JSON.parse(line) as ChildAnswer);
    });
  }

  /** Sends one command; resolves with its answer. */
  send(cmd: Record<string, unknown>): Promise<ChildAnswer> {
    return new Promise((resolve) => {
      this.answers.push(resolve);
      this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    });
  }

  /** Sends one command; resolves with `ok`, rejects with the error. */
  async do<T = unknown>(cmd: Record<string, unknown>): Promise<T> {
    const a = await this.send(cmd);
    if (a.error) throw Object.assign(new Error(a.error.message), { code: a.error.code });
    return a.ok as T;
  }

  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    return this.do<T>({ op: 'call', method, args: args.map(enc) });
  }

  stats(): Promise<ChildStats> {
    return this.do<ChildStats>({ op: 'stats' });
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.stdin!.write(JSON.stringify({ op: 'exit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  stderr(): string {
    return this.err;
  }
}

export interface ChildStats {
  nfsOps: Record<string, number>;
  writeback: { dirtyBytes: number; peakDirtyBytes: number; hardLimit: number; throttled: number; throttledMs: number };
  localio: LocalioClientStats;
}

/** Buffers as the child wants them. */
export function enc(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { b64: v.toString('base64') };
  return v;
}

export function dec(v: unknown): Buffer {
  return Buffer.from((v as { b64: string }).b64, 'base64');
}
