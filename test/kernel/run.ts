// Runs the Linux kernel NFSv3 client in a qemu VM (TCG) against an NFS server
// listening on this host, and reports the checks that guest.sh made.
//
// The guest reaches the host's loopback as 10.0.2.2 (qemu user networking), so
// the server must listen on 127.0.0.1 (or 0.0.0.0) and accept connections from
// unprivileged source ports. The guest runs as root: the export must not squash
// root (or must let the anonymous user create files in it).

import { spawn } from 'node:child_process';
import { buildInitramfs, findCloudKernel, findExecutable, findStaticBusybox } from './initramfs.js';

export interface KernelClientOptions {
  /** Where the server listens; the guest can only reach the host's loopback. */
  host: string;
  nfsPort: number;
  mountPort: number;
  /** Export path as the MOUNT protocol knows it, e.g. "/export". */
  exportPath: string;
  /** Whole run, boot included; qemu is killed when it passes. */
  timeoutMs: number;
  /** Entries in the big-directory check (default 5000). */
  files?: number;
  /** Called with console output as it arrives. */
  onConsole?: (text: string) => void;
  /** Where the initramfs is cached (default os.tmpdir()/tsnfs-kernel). */
  cacheDir?: string;
  /** Stops the run (qemu is killed) when aborted. */
  signal?: AbortSignal;
}

export interface KernelStep {
  name: string;
  ok: boolean;
  detail: string;
}

export interface KernelClientResult {
  /** The guest printed PASS, every step passed, and the run ended in time. */
  passed: boolean;
  steps: KernelStep[];
  /** Everything qemu printed (kernel log and guest output). */
  console: string;
  /** The verdict line's value, or null when the guest never printed one. */
  verdict: 'PASS' | 'FAIL' | null;
  timedOut: boolean;
  /** Wall time of the whole run (initramfs, boot, checks, power-off). */
  durationMs: number;
  /** qemu's exit code (null when killed). */
  exitCode: number | null;
}

const QEMU = 'qemu-system-x86_64';
const RESULT_RE = /TSNFS-KERNEL-RESULT (PASS|FAIL)(?: (\d+) steps)?/;
const STEP_RE = /STEP (\S+) (ok|FAIL)(?: (.*))?$/;
const MAX_CONSOLE = 16 << 20;

/** A one-line reason why the kernel client cannot run here, or false when it can. */
export function missingKernelTools(): string | false {
  const missing: string[] = [];
  if (!findExecutable(QEMU)) missing.push(`${QEMU} (apt-get install qemu-system-x86)`);
  if (!findStaticBusybox()) missing.push('a static busybox (apt-get install busybox-static)');
  if (!findCloudKernel()) missing.push('a cloud kernel with modules (apt-get install linux-image-cloud-amd64)');
  if (!findExecutable('modprobe')) missing.push('modprobe (apt-get install kmod)');
  return missing.length === 0 ? false : `kernel client test needs ${missing.join(', ')}`;
}

/** Extracts the step lines and the verdict from console output. */
export function parseConsole(text: string): { steps: KernelStep[]; verdict: 'PASS' | 'FAIL' | null } {
  const steps: KernelStep[] = [];
  let verdict: 'PASS' | 'FAIL' | null = null;
  let announced: number | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\r/g, '');
    const m = STEP_RE.exec(line);
    if (m) steps.push({ name: m[1]!, ok: m[2] === 'ok', detail: (m[3] ?? '').trim() });
    const r = RESULT_RE.exec(line);
    if (r && verdict === null) {
      verdict = r[1] as 'PASS' | 'FAIL';
      if (r[2] !== undefined) announced = Number(r[2]);
    }
  }
  // A step line garbled on the console (e.g. by interleaved kernel messages) must not pass unseen.
  if (announced !== null && announced !== steps.length) {
    steps.push({ name: 'console', ok: false, detail: `guest reported ${announced} steps, ${steps.length} parsed` });
  }
  return { steps, verdict };
}

/** The address the guest uses for a host address the server listens on. */
function guestAddress(host: string): string {
  if (host === '127.0.0.1' || host === 'localhost' || host === '0.0.0.0') return '10.0.2.2';
  throw new Error(`the guest reaches only the host's 127.0.0.1 (as 10.0.2.2); host ${host} is not supported`);
}

function checkPort(name: string, p: number): void {
  if (!Number.isInteger(p) || p <= 0 || p > 65535) throw new Error(`bad ${name}: ${p}`);
}

/** Boots the kernel client against the server and waits for its verdict. */
export async function runKernelClient(opts: KernelClientOptions): Promise<KernelClientResult> {
  const started = Date.now();
  checkPort('nfsPort', opts.nfsPort);
  checkPort('mountPort', opts.mountPort);
  if (!/^\/\S*$/.test(opts.exportPath)) throw new Error(`bad exportPath: ${JSON.stringify(opts.exportPath)}`);
  const addr = guestAddress(opts.host);
  const files = opts.files ?? 5000;

  const initramfs = await buildInitramfs({ cacheDir: opts.cacheDir });
  // The guest's own watchdog fires first, so a hang still yields the steps done so far.
  const remaining = opts.timeoutMs - (Date.now() - started);
  const guestTimeout = Math.max(5, Math.floor((remaining - 10_000) / 1000));
  const cmdline = [
    'console=ttyS0',
    'panic=-1',
    'quiet',
    `tsnfs.addr=${addr}`,
    `tsnfs.port=${opts.nfsPort}`,
    `tsnfs.mountport=${opts.mountPort}`,
    `tsnfs.export=${opts.exportPath}`,
    `tsnfs.timeout=${guestTimeout}`,
    `tsnfs.files=${files}`,
  ].join(' ');
  const args = [
    '-accel', 'tcg',
    '-cpu', 'max',
    '-m', '1024',
    '-smp', '2',
    '-nographic',
    '-no-reboot',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-kernel', initramfs.kernel.vmlinuz,
    '-initrd', initramfs.path,
    '-append', cmdline,
    '-netdev', 'user,id=n0,ipv6=off',
    '-device', 'virtio-net-pci,netdev=n0,romfile=',
  ];

  const child = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let consoleText = '';
  let timedOut = false;
  const append = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    if (consoleText.length < MAX_CONSOLE) consoleText += s;
    opts.onConsole?.(s);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);

  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, Math.max(1, remaining));
  const onAbort = () => kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) kill();

  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  }).finally(() => {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  });

  const { steps, verdict } = parseConsole(consoleText);
  if (timedOut) steps.push({ name: 'host-timeout', ok: false, detail: `qemu killed after ${opts.timeoutMs} ms` });
  else if (verdict === null) steps.push({ name: 'qemu-exit', ok: false, detail: `qemu exited (code ${exitCode}) without a verdict` });
  const passed = verdict === 'PASS' && !timedOut && steps.length > 0 && steps.every((s) => s.ok);
  return { passed, steps, console: consoleText, verdict, timedOut, durationMs: Date.now() - started, exitCode };
}
