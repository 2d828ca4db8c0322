// Capturing loopback traffic with dumpcap and checking it with tshark, the
// reference dissector: did every frame decode, which protocols and RPC
// procedures went by.
//
//   const cap = await startCapture({ ports: [nfsPort, mountPort] });
//   ... traffic ...
//   const pcap = await cap.stop();
//   const a = await analyzeCapture(pcap, { rpcPorts: [nfsPort, mountPort] });
//   assert.deepEqual(a.malformed, []);
//
// dumpcap gets a 256 MiB buffer: its default drops packets on loopback.
// Captures grow fast (hundreds of MB for a 100 MiB copy): capture short runs.

import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forgetTempPath, isRunning, removeOnExit, run, spawnTracked, stopChild } from './proc.js';
import { missing, requireTool, which } from './tools.js';

let captureProbe: false | string | undefined;

/**
 * A one-line reason why captures cannot be made and decoded here, or false.
 * Without root, dumpcap captures only with capabilities (Debian asks at
 * install time); a quick `dumpcap -L -i lo` tells.
 */
export function missingCapture(): false | string {
  const absent = missing('dumpcap', 'tshark');
  if (absent) return absent;
  if (process.getuid?.() === 0) return false;
  if (captureProbe === undefined) {
    const r = spawnSync(which('dumpcap')!, ['-L', '-i', 'lo'], { stdio: 'ignore', timeout: 10_000 });
    captureProbe = r.status === 0 ? false : 'dumpcap may not capture on lo as this user (run as root, or dpkg-reconfigure wireshark-common)';
  }
  return captureProbe;
}

export interface CaptureOptions {
  /** TCP ports to capture (either direction); at least one. */
  ports: number[];
  /** Default 'lo'. */
  iface?: string;
  /** Kernel buffer in MiB (dumpcap -B); default 256. */
  bufferMiB?: number;
  /** Bytes kept per packet (dumpcap -s); default whole packets. */
  snaplen?: number;
  /** Where the pcapng goes; default a new temp dir (removed by remove()). */
  path?: string;
  /** How long to wait for dumpcap to start capturing; default 15 s. */
  startTimeoutMs?: number;
}

export interface CaptureStats {
  /** Packets dumpcap wrote. */
  captured: number | null;
  /** Packets received and dropped on the interface, as dumpcap reports them. */
  received: number | null;
  dropped: number | null;
}

export interface Capture {
  /** The pcapng file being written. */
  path: string;
  /** dumpcap's pid. */
  pid: number;
  /** Stops capturing, flushes the file; resolves with its path. Idempotent. */
  stop(): Promise<string>;
  /** dumpcap's final counts (after stop()). */
  stats(): CaptureStats;
  /** Stops if needed and deletes the capture (and the temp dir made for it). */
  remove(): Promise<void>;
  /**
   * Keeps the capture after the process exits (a temp dir made for it is
   * otherwise removed then, if remove() was not called); returns its path.
   */
  keep(): string;
}

/** The BPF filter for a set of TCP ports. */
export function portFilter(ports: number[]): string {
  if (ports.length === 0) throw new Error('startCapture: no ports');
  for (const p of ports) if (!Number.isInteger(p) || p <= 0 || p > 65535) throw new Error(`bad port ${p}`);
  return ports.map((p) => `tcp port ${p}`).join(' or ');
}

/**
 * Marker datagrams prove where dumpcap is. dumpcap neither says when its
 * filter is live nor drains the kernel ring when told to stop (a short
 * exchange stopped at once is lost entirely), so the capture also takes UDP to
 * a port of our own: startCapture() returns once a marker shows up in the
 * file, and stop() sends one more and stops dumpcap only once it is in the
 * file, behind everything sent before it. analyzeCapture() leaves markers out.
 */
export const MARKER_TAG = 'TSNFS-CAPTURE-MARK';
const NOT_MARKER = `!(udp && frame contains "${MARKER_TAG}")`;

interface Marker {
  port: number;
  /** Sends a marker until it appears in the file; rejects after timeoutMs or when abort() says so. */
  sendAndWait(file: string, timeoutMs: number, abort: () => string | false): Promise<void>;
  close(): void;
}

async function openMarker(): Promise<Marker> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', () => {
    // our own markers coming back: nothing to do
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => resolve());
  });
  // Like the daemons: a forgotten capture must not keep the process alive.
  sock.unref();
  const port = sock.address().port;
  let scanned = 0;
  return {
    port,
    async sendAndWait(file, timeoutMs, abort) {
      const nonce = Buffer.from(`${MARKER_TAG} ${randomBytes(12).toString('hex')}`);
      const deadline = Date.now() + timeoutMs;
      let lastSend = 0;
      const fh = await open(file, 'r');
      try {
        for (;;) {
          if (Date.now() - lastSend >= 250) {
            // Resent now and then: one sent before the filter was live is never seen.
            sock.send(nonce, port, '127.0.0.1');
            lastSend = Date.now();
          }
          await sleep(20);
          const size = (await fh.stat()).size;
          const from = Math.max(0, scanned - nonce.length);
          if (size > from) {
            const buf = Buffer.alloc(size - from);
            const { bytesRead } = await fh.read(buf, 0, buf.length, from);
            scanned = from + bytesRead;
            if (buf.subarray(0, bytesRead).includes(nonce)) return;
          }
          const why = abort();
          if (why) throw new Error(why);
          if (Date.now() > deadline) throw new Error(`capture marker not seen in ${file} after ${timeoutMs} ms`);
        }
      } finally {
        await fh.close();
      }
    },
    close() {
      sock.close();
    },
  };
}

/**
 * Starts dumpcap on loopback for the given TCP ports (plus our marker port)
 * and resolves once packets sent from now on are sure to be captured.
 */
export async function startCapture(opts: CaptureOptions): Promise<Capture> {
  const dumpcap = requireTool('dumpcap');
  const tcpFilter = portFilter(opts.ports);
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  let madeDir: string | null = null;
  let path = opts.path;
  if (!path) {
    madeDir = await mkdtemp(join(tmpdir(), 'tsnfs-capture-'));
    path = join(madeDir, 'capture.pcapng');
    removeOnExit(madeDir);
  }
  const marker = await openMarker();
  const filter = `(${tcpFilter}) or (udp port ${marker.port})`;
  const args = ['-q', '-B', String(opts.bufferMiB ?? 256), '-i', opts.iface ?? 'lo', '-f', filter, '-w', path];
  if (opts.snaplen !== undefined) args.push('-s', String(opts.snaplen));
  const child: ChildProcess = spawnTracked(dumpcap, args, { daemon: true });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 1 << 20) stderr += b.toString();
  });
  child.stdout?.resume();
  const exited = () => (isRunning(child) ? false : `dumpcap exited (${child.exitCode ?? child.signalCode})`);

  try {
    // "File: ..." comes once the file is created; the marker then proves the filter is live.
    const deadline = Date.now() + startTimeoutMs;
    while (!/^File: /m.test(stderr)) {
      const why = exited();
      if (why) throw new Error(why);
      if (Date.now() > deadline) throw new Error(`dumpcap did not start capturing in ${startTimeoutMs} ms`);
      await sleep(10);
    }
    await marker.sendAndWait(path, Math.max(1000, deadline - Date.now()), exited);
  } catch (e) {
    marker.close();
    await stopChild(child, 'SIGKILL');
    if (madeDir) {
      await rm(madeDir, { recursive: true, force: true });
      forgetTempPath(madeDir);
    }
    throw new Error(`${(e as Error).message}: ${dumpcap} ${args.join(' ')}\n${stderr.trim()}`);
  }

  const file = path;
  let stopping: Promise<string> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      try {
        if (isRunning(child)) await marker.sendAndWait(file, 30_000, exited);
      } finally {
        marker.close();
        // SIGINT: dumpcap closes the file and prints its counts.
        await stopChild(child, 'SIGINT', 10_000);
        // Its last words (the counts) may still be in the pipe.
        const ended = child.stderr && !child.stderr.readableEnded ? once(child.stderr, 'end') : Promise.resolve();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          void ended.then(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return file;
    })());
  return {
    path: file,
    pid: child.pid!,
    stop,
    stats: () => parseDumpcapStats(stderr),
    async remove() {
      await stop().catch(() => undefined);
      if (madeDir) {
        await rm(madeDir, { recursive: true, force: true });
        forgetTempPath(madeDir);
      } else {
        await rm(file, { force: true });
      }
    },
    keep() {
      if (madeDir) forgetTempPath(madeDir);
      return file;
    },
  };
}

export function parseDumpcapStats(stderr: string): CaptureStats {
  const cap = /Packets captured: (\d+)/.exec(stderr);
  const rd = /Packets received\/dropped on interface .*?: (\d+)\/(\d+)/.exec(stderr);
  return {
    captured: cap ? Number(cap[1]) : null,
    received: rd ? Number(rd[1]) : null,
    dropped: rd ? Number(rd[2]) : null,
  };
}

// ---- analysis ----

export interface AnalyzeOptions {
  /** TCP ports whose traffic is ONC RPC (tshark -d tcp.port==P,rpc); the NFS and MOUNT ports. */
  rpcPorts: number[];
  /** Default 120 s. */
  timeoutMs?: number;
}

export interface ProcedureCount {
  program: number;
  version: number;
  procedure: number;
  /** e.g. "NFS3 READDIRPLUS", "MOUNT3 MNT", "PORTMAP2 GETPORT"; numbers for programs it does not know. */
  name: string;
  calls: number;
  replies: number;
}

export interface CaptureAnalysis {
  /** Frames in the capture (marker datagrams left out). */
  frames: number;
  /** Frames that carry at least one RPC message (call or reply). */
  rpcFrames: number;
  /** RPC calls and replies (a frame may hold several, or a fragment of one). */
  rpcCalls: number;
  rpcReplies: number;
  /** One line per malformed frame or frame with an expert error: "frame N: <info> [<expert messages>]". */
  malformed: string[];
  /** Every protocol tshark saw in any frame (frame.protocols), e.g. eth, ip, tcp, rpc, nfs, mount. */
  protocols: Set<string>;
  /** Calls and replies per program/version/procedure, keyed by `name`. */
  procedures: Map<string, ProcedureCount>;
  /** Replies whose RPC status was not success: "frame N: <info>" (PROG_UNAVAIL, GARBAGE_ARGS, denied, ...). */
  rpcErrors: string[];
  /** Calls with no reply of the same xid on the same TCP stream. */
  unanswered: UnansweredCall[];
  /** Replies to no call seen before them on their stream (the call was not reassembled). */
  orphanReplies: UnansweredCall[];
  /**
   * TCP streams (tcp.stream) where tshark saw a retransmission, an
   * out-of-order or a lost segment. Loopback retransmits under load (tail
   * loss probes, a receiver that pruned its queue), and a PDU overlapping such
   * a segment may not be reassembled: a reply missing there can be the
   * capture's, not the server's.
   */
  disturbedStreams: Set<number>;
}

export interface UnansweredCall {
  frame: number;
  stream: number;
  xid: number;
  name: string;
}

const PROGRAMS: Record<number, { name: string; procs: Record<number, string[]> }> = {
  100000: {
    name: 'PORTMAP',
    procs: {
      2: ['NULL', 'SET', 'UNSET', 'GETPORT', 'DUMP', 'CALLIT'],
      3: ['NULL', 'SET', 'UNSET', 'GETADDR', 'DUMP', 'CALLIT', 'GETTIME', 'UADDR2TADDR', 'TADDR2UADDR'],
      4: ['NULL', 'SET', 'UNSET', 'GETADDR', 'DUMP', 'BCAST', 'GETTIME', 'UADDR2TADDR', 'TADDR2UADDR', 'GETVERSADDR', 'INDIRECT', 'GETADDRLIST', 'GETSTAT'],
    },
  },
  100003: {
    name: 'NFS',
    procs: {
      3: ['NULL', 'GETATTR', 'SETATTR', 'LOOKUP', 'ACCESS', 'READLINK', 'READ', 'WRITE', 'CREATE', 'MKDIR', 'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK', 'READDIR', 'READDIRPLUS', 'FSSTAT', 'FSINFO', 'PATHCONF', 'COMMIT'],
      4: ['NULL', 'COMPOUND'],
    },
  },
  100005: {
    name: 'MOUNT',
    procs: { 1: ['NULL', 'MNT', 'DUMP', 'UMNT', 'UMNTALL', 'EXPORT'], 3: ['NULL', 'MNT', 'DUMP', 'UMNT', 'UMNTALL', 'EXPORT'] },
  },
  100227: { name: 'NFSACL', procs: { 3: ['NULL', 'GETACL', 'SETACL'] } },
  400122: { name: 'LOCALIO', procs: { 1: ['NULL', 'UUID_IS_LOCAL'] } },
};

export function procedureName(program: number, version: number, procedure: number): string {
  const p = PROGRAMS[program];
  if (!p) return `${program}v${version} ${procedure}`;
  return `${p.name}${version} ${p.procs[version]?.[procedure] ?? String(procedure)}`;
}

// Fields, in order, of the per-frame pass. With -E occurrence=a, a field that
// occurs several times in a frame (pipelined RPCs) comes out comma-separated.
const FIELDS = [
  'frame.number',
  'frame.protocols',
  'rpc.msgtyp',
  'rpc.program',
  'rpc.programversion',
  'rpc.procedure',
  'rpc.replystat',
  'rpc.state_accept',
  'tcp.stream',
  'rpc.xid',
] as const;

function list(s: string | undefined): number[] {
  if (!s) return [];
  return s.split(',').filter((x) => x !== '').map(Number);
}

function decodeArgs(rpcPorts: number[]): string[] {
  const args: string[] = [];
  for (const p of new Set(rpcPorts)) args.push('-d', `tcp.port==${p},rpc`);
  return args;
}

/** Decodes a capture with tshark and summarises it. */
export async function analyzeCapture(pcap: string, opts: AnalyzeOptions): Promise<CaptureAnalysis> {
  const tshark = requireTool('tshark');
  const timeoutMs = opts.timeoutMs ?? 120_000;
  // Retransmitted data on loopback can overlap what was sent before; without
  // this tshark may leave a PDU spanning it unreassembled.
  const common = ['-n', '-r', pcap, '-o', 'tcp.reassemble_out_of_order:TRUE', ...decodeArgs(opts.rpcPorts)];
  const only = (f: string) => ['-Y', f ? `(${f}) && ${NOT_MARKER}` : NOT_MARKER];

  const fieldArgs = [...common, ...only(''), '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of FIELDS) fieldArgs.push('-e', f);
  // Frames that are malformed or carry an expert error, with what tshark says about them.
  const badArgs = [
    ...common,
    ...only('_ws.malformed || _ws.expert.severity == "Error"'),
    '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=; ',
    '-e', 'frame.number', '-e', '_ws.col.Info', '-e', '_ws.expert.message',
  ];
  const errArgs = [
    ...common,
    ...only('rpc.msgtyp == 1 && (rpc.replystat != 0 || rpc.state_accept != 0)'),
    '-T', 'fields', '-E', 'separator=/t', '-e', 'frame.number', '-e', '_ws.col.Info',
  ];
  const disturbedArgs = [
    ...common,
    ...only('tcp.analysis.retransmission || tcp.analysis.out_of_order || tcp.analysis.lost_segment'),
    '-T', 'fields', '-e', 'tcp.stream',
  ];
  const [all, bad, errs, disturbed] = await Promise.all([
    run(tshark, fieldArgs, { timeoutMs }),
    run(tshark, badArgs, { timeoutMs }),
    run(tshark, errArgs, { timeoutMs }),
    run(tshark, disturbedArgs, { timeoutMs }),
  ]);
  for (const r of [all, bad, errs, disturbed]) {
    if (r.code !== 0) throw new Error(`tshark failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.command}\n${r.stderr.trim()}`);
  }

  const result: CaptureAnalysis = {
    frames: 0,
    rpcFrames: 0,
    rpcCalls: 0,
    rpcReplies: 0,
    malformed: [],
    protocols: new Set(),
    procedures: new Map(),
    rpcErrors: [],
    unanswered: [],
    orphanReplies: [],
    disturbedStreams: new Set(list(disturbed.stdout.split('\n').join(','))),
  };
  // "stream/xid" of calls not yet answered, in capture order.
  const open = new Map<string, UnansweredCall>();
  for (const line of all.stdout.split('\n')) {
    if (!line) continue;
    const [frame, protos, msgtyp, prog, vers, proc, , , streamField, xidField] = line.split('\t');
    result.frames++;
    for (const p of (protos ?? '').split(':')) if (p) result.protocols.add(p);
    const types = list(msgtyp);
    if (types.length === 0) continue;
    result.rpcFrames++;
    // Calls carry program/version/procedure; tshark adds them to replies it
    // matched to a call, so the lists line up except for unmatched replies.
    const progs = list(prog);
    const procs = list(proc);
    // tshark gives rpc.programversion twice per message (the header's and the
    // one it repeats under the program), so take every k-th.
    const allVersions = list(vers);
    const k = allVersions.length / types.length;
    const versions = Number.isInteger(k) && k >= 1 ? types.map((_, i) => allVersions[i * k]!) : [];
    const aligned = progs.length === types.length && versions.length === types.length && procs.length === types.length;
    const stream = Number(streamField);
    const xids = list(xidField);
    types.forEach((t, i) => {
      if (t === 0) result.rpcCalls++;
      else result.rpcReplies++;
      const name = aligned ? procedureName(progs[i]!, versions[i]!, procs[i]!) : '?';
      if (xids.length === types.length) {
        const key = `${stream}/${xids[i]}`;
        if (t === 0) open.set(key, { frame: Number(frame), stream, xid: xids[i]!, name });
        else if (!open.delete(key)) result.orphanReplies.push({ frame: Number(frame), stream, xid: xids[i]!, name });
      }
      if (!aligned) return;
      let c = result.procedures.get(name);
      if (!c) {
        c = { program: progs[i]!, version: versions[i]!, procedure: procs[i]!, name, calls: 0, replies: 0 };
        result.procedures.set(name, c);
      }
      if (t === 0) c.calls++;
      else c.replies++;
    });
  }
  for (const line of bad.stdout.split('\n')) {
    if (!line) continue;
    const [num, info, expert] = line.split('\t');
    result.malformed.push(`frame ${num}: ${info ?? ''}${expert ? ` [${expert}]` : ''}`);
  }
  for (const line of errs.stdout.split('\n')) {
    if (!line) continue;
    const [num, info] = line.split('\t');
    result.rpcErrors.push(`frame ${num}: ${info ?? ''}`);
  }
  result.unanswered = [...open.values()];
  return result;
}

/**
 * Throws unless every call in the capture has its reply, per procedure. A
 * reply (or the call of a reply) may be missing only on a stream where
 * loopback retransmitted, as tshark may not reassemble it there (callers
 * check the data their clients got); those messages are returned, for a
 * diagnostic.
 */
export function assertEveryCallAnswered(a: CaptureAnalysis, summary: string): UnansweredCall[] {
  const clean = (u: UnansweredCall) => !a.disturbedStreams.has(u.stream);
  const lost = a.unanswered.filter(clean);
  if (lost.length > 0) throw new Error(`calls with no reply on streams without retransmissions: ${JSON.stringify(lost)}; ${summary}`);
  const orphans = a.orphanReplies.filter(clean);
  if (orphans.length > 0) throw new Error(`replies to no call on streams without retransmissions: ${JSON.stringify(orphans)}; ${summary}`);
  if (a.rpcCalls === 0 || a.rpcCalls + a.orphanReplies.length !== a.rpcReplies + a.unanswered.length) throw new Error(`calls and replies do not pair up; ${summary}`);
  // Per procedure only when every message was paired: tshark names no procedure for a reply whose call it lost.
  if (a.unanswered.length === 0 && a.orphanReplies.length === 0) {
    for (const c of a.procedures.values()) {
      if (c.replies !== c.calls) throw new Error(`${c.name}: ${c.calls} calls, ${c.replies} replies; ${summary}`);
    }
  } else {
    for (const c of a.procedures.values()) {
      const excused = a.unanswered.filter((u) => u.name === c.name).length;
      if (c.replies + excused < c.calls) throw new Error(`${c.name}: ${c.calls} calls, ${c.replies} replies; ${summary}`);
    }
  }
  return [...a.unanswered, ...a.orphanReplies];
}

/** Counts calls of one procedure by name ("NFS3 READ"); 0 when absent. */
export function callsOf(a: CaptureAnalysis, name: string): number {
  return a.procedures.get(name)?.calls ?? 0;
}
