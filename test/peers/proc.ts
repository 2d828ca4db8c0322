// Child processes of the peer harness: one-shot commands with a timeout, and
// long-running daemons (nfs-ganesha, rpcbind, dumpcap) that must not outlive
// the test process, however it ends:
// - a normal exit, even one where a test forgot to stop them: daemons do not
//   hold the event loop open, and an 'exit' hook SIGKILLs what is left (and
//   removes the temp dirs registered with removeOnExit());
// - SIGINT, SIGTERM, SIGHUP: while daemons run, a handler kills them and then
//   lets the signal take its default course;
// - SIGKILL or a crash: daemons are started through `setpriv --pdeathsig KILL`
//   (util-linux) where it exists, so the kernel kills them with us. (A daemon
//   that changes its uid, as rpcbind does, loses that setting.)

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { which } from './tools.js';

const live = new Set<ChildProcess>();
const tempPaths = new Set<string>();
const undoers: (() => void)[] = [];
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let exitHooked = false;
let signalsHooked = false;

function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  // Undone before the temp paths go: a mount inside one, say.
  for (const undo of undoers.splice(0)) {
    try {
      undo();
    } catch {
      // best effort, as the removals below
    }
  }
  for (const p of tempPaths) rmSync(p, { recursive: true, force: true });
  tempPaths.clear();
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', killAll);
}

/**
 * Removes a temp file or dir when the process exits or is killed by a signal,
 * if nobody removed it before (a test that forgot, a crash). forgetTempPath()
 * undoes this, to keep it.
 */
export function removeOnExit(path: string): void {
  hookExit();
  tempPaths.add(path);
}

/**
 * Runs `undo` (synchronous) when the process exits or is killed by a
 * signal, before the temp paths are removed.
 */
export function undoOnExit(undo: () => void): void {
  hookExit();
  hookSignals();
  undoers.push(undo);
}

export function forgetTempPath(path: string): void {
  tempPaths.delete(path);
}

function onSignal(sig: NodeJS.Signals): void {
  killAll();
  unhookSignals();
  // With our handler gone the signal does what it would have done.
  process.kill(process.pid, sig);
}

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of SIGNALS) process.on(sig, onSignal);
}

function unhookSignals(): void {
  if (!signalsHooked) return;
  signalsHooked = false;
  for (const sig of SIGNALS) process.off(sig, onSignal);
}

function track(child: ChildProcess): void {
  hookExit();
  live.add(child);
  hookSignals();
  const forget = () => {
    live.delete(child);
    if (live.size === 0) unhookSignals();
  };
  child.once('exit', forget);
  // A spawn failure (ENOENT) is reported through 'error'; keep it from being fatal.
  child.once('error', forget);
}

export interface SpawnTrackedOptions extends SpawnOptions {
  /**
   * A daemon: it does not keep the event loop alive (nor do its pipes), and it
   * is killed if this process dies, through setpriv --pdeathsig where available.
   */
  daemon?: boolean;
}

/** Spawns a process and tracks it until it exits. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnTrackedOptions = {}): ChildProcess {
  const { daemon, ...spawnOpts } = opts;
  let file = cmd;
  let argv = args;
  const setpriv = daemon ? which('setpriv') : null;
  if (setpriv) {
    file = setpriv;
    argv = ['--pdeathsig', 'KILL', '--', cmd, ...args];
  }
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
  track(child);
  if (daemon) {
    child.unref();
    for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
  return child;
}

/** True while the child has neither exited nor been reaped. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

/**
 * Stops a tracked child: `signal` first, SIGKILL after `graceMs`. Resolves once
 * it has exited, with its exit code (null when killed by a signal).
 */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => {
    if (isRunning(child)) child.kill('SIGKILL');
  }, graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
  return child.exitCode;
}

export interface RunResult {
  /** Exit code, or null when killed by a signal (see `signal`, `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes, for binary output (nfs-cat of a binary file). */
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
  /** The command line, for messages. */
  command: string;
}

export interface RunOptions {
  /** Killed (SIGKILL) when it runs longer; default 30 s. */
  timeoutMs?: number;
  /** Written to stdin, which is closed afterwards (stdin is empty otherwise). */
  input?: Buffer | string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Output beyond this many bytes per stream is dropped; default 256 MiB. */
  maxOutput?: number;
}

/** Runs a command to completion and collects its output. Never rejects on a non-zero exit. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxOutput = opts.maxOutput ?? 256 << 20;
  const started = performance.now();
  const child = spawnTracked(cmd, args, {
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: opts.env,
    cwd: opts.cwd,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let outLen = 0;
  let errLen = 0;
  child.stdout?.on('data', (b: Buffer) => {
    if (outLen < maxOutput) out.push(b);
    outLen += b.length;
  });
  child.stderr?.on('data', (b: Buffer) => {
    if (errLen < maxOutput) err.push(b);
    errLen += b.length;
  });
  if (opts.input !== undefined && child.stdin) {
    child.stdin.on('error', () => {
      // the command may exit without reading its input
    });
    child.stdin.end(opts.input);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      // 'close' waits for stdout and stderr to be drained too.
      child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]));
    });
    const stdoutBytes = Buffer.concat(out);
    return {
      code,
      signal,
      stdout: stdoutBytes.toString('utf8'),
      stdoutBytes,
      stderr: Buffer.concat(err).toString('utf8'),
      timedOut,
      durationMs: performance.now() - started,
      command: [cmd, ...args].join(' '),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A one-paragraph description of a failed run, for assertion messages. */
export function describeRun(r: RunResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const tail = (s: string) => (s.length > 2000 ? '...' + s.slice(-2000) : s).trim();
  return `${r.command}: ${how} after ${Math.round(r.durationMs)} ms\nstderr: ${tail(r.stderr)}\nstdout: ${tail(r.stdout)}`;
}
