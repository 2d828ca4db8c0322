// Debian's libnfs-utils (nfs-ls, nfs-cp, nfs-cat) as a reference NFSv3 client.
//
// URLs follow libnfs: nfs://HOST/EXPORT/PATH?version=3&nfsport=P&mountport=M.
// With both ports given libnfs never contacts the portmapper on 111.
// nfs-cp creates its target with EXCLUSIVE and never overwrites: copy to fresh names.

import { run, type RunResult } from './proc.js';
import { requireTool } from './tools.js';

export interface LibnfsTarget {
  /** Default 127.0.0.1. */
  host?: string;
  /** The path the server exports (what MOUNT is asked for), e.g. "/srv/export". */
  exportPath: string;
  /** A path inside the export ("" or "/" for its root). */
  path?: string;
  nfsPort: number;
  mountPort: number;
  /** AUTH_SYS credentials libnfs sends (default: its own uid/gid). */
  uid?: number;
  gid?: number;
  /** Other URL arguments libnfs accepts (readahead, pagecache, debug, dircache, autoreconnect, ...). */
  params?: Record<string, string | number>;
}

export interface LibnfsOptions {
  /** Default 30 s; the command is killed when it passes. */
  timeoutMs?: number;
}

/**
 * nfs://HOST/EXPORT/PATH?version=3&nfsport=P&mountport=M[&uid=U&gid=G...].
 * Path segments are used as they are: libnfs does not percent-decode, so
 * names with '?', '#', '&' or '%' cannot be expressed.
 */
export function libnfsUrl(t: LibnfsTarget): string {
  const host = t.host ?? '127.0.0.1';
  const segs = [t.exportPath, t.path ?? '']
    .join('/')
    .split('/')
    .filter((s) => s !== '');
  for (const s of segs) {
    if (/[?#&%\s]/.test(s)) throw new Error(`path segment not expressible in a libnfs URL: ${JSON.stringify(s)}`);
  }
  const q: Array<[string, string | number]> = [
    ['version', 3],
    ['nfsport', t.nfsPort],
    ['mountport', t.mountPort],
  ];
  if (t.uid !== undefined) q.push(['uid', t.uid]);
  if (t.gid !== undefined) q.push(['gid', t.gid]);
  for (const [k, v] of Object.entries(t.params ?? {})) q.push([k, v]);
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return `nfs://${hostPart}/${segs.join('/')}?${q.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

/** A local path, or a file on an NFS server. */
export type CpEndpoint = string | LibnfsTarget;

function arg(e: CpEndpoint): string {
  return typeof e === 'string' ? e : libnfsUrl(e);
}

/** `nfs-ls [flags] URL`; flags: '-R' (recursive), '-s' (summary), '-D' (discovery). */
export function nfsLs(target: LibnfsTarget, flags: string[] = [], opts: LibnfsOptions = {}): Promise<RunResult> {
  return run(requireTool('nfs-ls'), [...flags, libnfsUrl(target)], { timeoutMs: opts.timeoutMs });
}

/** `nfs-cat URL`: the file's bytes are in `stdoutBytes`. */
export function nfsCat(target: LibnfsTarget, opts: LibnfsOptions = {}): Promise<RunResult> {
  return run(requireTool('nfs-cat'), [libnfsUrl(target)], { timeoutMs: opts.timeoutMs ?? 30_000 });
}

/** `nfs-cp SRC DST`; either side may be a local path or an NFS target. */
export function nfsCp(src: CpEndpoint, dst: CpEndpoint, opts: LibnfsOptions = {}): Promise<RunResult> {
  return run(requireTool('nfs-cp'), [arg(src), arg(dst)], { timeoutMs: opts.timeoutMs ?? 60_000 });
}

export interface LsEntry {
  /** The mode column, e.g. "-rw-r--r--" or "drwxr-xr-x". */
  mode: string;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  name: string;
}

/**
 * Parses nfs-ls output (`-rw-r--r--  1     0     0            6 hello.txt`).
 * With -R the names are paths relative to the URL.
 */
export function parseLs(stdout: string): LsEntry[] {
  const out: LsEntry[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^([-dlcbps][-rwxsStT]{9})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s(.*)$/.exec(line.trimEnd());
    if (!m) continue;
    out.push({ mode: m[1]!, nlink: +m[2]!, uid: +m[3]!, gid: +m[4]!, size: +m[5]!, name: m[6]!.trimStart() });
  }
  return out;
}
