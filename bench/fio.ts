// fio as the physical limit of a benchmark: runs one job on a file with
// --output-format=json and answers its rate. Debian's fio, ioengine=libaio
// (true async for O_DIRECT; with buffered IO io_submit completes each IO
// before it returns, so a buffered job is one IO at a time whatever its
// iodepth).
//
// fio 3.33's `uncached=1` sets 0x40 (an RWF_UNCACHED that never landed;
// RWF_ATOMIC since Linux 6.11), not RWF_DONTCACHE (0x80): the kernel
// refuses it, so fio has no dontcache job here.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface FioJob {
  filename: string;
  /** fio's rw: randread, randwrite, read (sequential), write (sequential). */
  rw: 'randread' | 'randwrite' | 'read' | 'write';
  /** Block size in bytes. */
  bs: number;
  iodepth: number;
  direct: boolean;
  /** Bytes of the file the job covers (the file must exist at this size for reads). */
  size: number;
  seconds: number;
  /** Drop the file's cached pages before the job (fio's invalidate; default: only for direct). */
  invalidate?: boolean;
  /** fsync at the end of a write job, counted in its time (end_fsync). */
  endFsync?: boolean;
}

export interface FioResult {
  iops: number;
  /** MiB/s. */
  mibps: number;
  /** Mean completion latency, µs. */
  latUs: number;
}

interface FioDir {
  io_bytes: number;
  iops: number;
  bw_bytes: number;
  clat_ns?: { mean: number };
}

/** Whether fio is on PATH (its version string), or undefined. */
export async function fioVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await run('fio', ['--version']);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

export async function runFio(job: FioJob): Promise<FioResult> {
  const args = [
    '--name=tsnfs-bench',
    `--filename=${job.filename}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    '--ioengine=libaio',
    `--direct=${job.direct ? 1 : 0}`,
    `--size=${job.size}`,
    `--runtime=${job.seconds}`,
    '--time_based',
    `--invalidate=${(job.invalidate ?? job.direct) ? 1 : 0}`,
    '--randrepeat=0',
    '--norandommap',
    '--output-format=json',
  ];
  if (job.endFsync) args.push('--end_fsync=1');
  const { stdout } = await run('fio', args, { maxBuffer: 16 * 1024 * 1024, timeout: (job.seconds + 120) * 1000 });
  // fio may print notes before the JSON document.
  const doc = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ read: FioDir; write: FioDir; error: number }> };
  const j = doc.jobs[0]!;
  if (j.error) throw new Error(`fio ${job.rw} failed: error ${j.error}`);
  const d = job.rw === 'randread' || job.rw === 'read' ? j.read : j.write;
  return { iops: d.iops, mibps: d.bw_bytes / (1024 * 1024), latUs: (d.clat_ns?.mean ?? 0) / 1000 };
}
