// What the client verbs share: nfs:// arguments turned into (client, path)
// pairs, one client per export for the whole command, shell-style error
// messages, and `--stats`.
//
// An nfs:// URL names a server path, not an export and a path inside it.
// The export is found the way a user reads it: the longest exported path
// (MOUNT EXPORT) that is a prefix of the URL's path is mounted, and the rest
// is a path inside it. So `nfs://h/srv/x/a/b` with `/srv/x` exported mounts
// `/srv/x` and works on `a/b`, whether `a/b` is a directory, a file or not
// there yet (cp, mkdir); two URLs on the same export share one client (mv
// renames). When the server lists no matching export (some hide them), the
// URL's path is mounted as it is, then each parent in turn, as libnfs does.

import { Command, InvalidArgumentError } from 'commander';
import { once } from 'node:events';
import { posix } from 'node:path';
import { connect, getPort, optionsFromUrl, parseNfsUrl, ProgramClient, NfsError, type ClientStats, type ConnectOptions, type NfsClient, type NfsUrl } from '../client/index.js';
import { parseCacheModeOption } from './options.js';
import { MOUNT_V3_TABLE } from '../proto/mount3.gen.js';
import type { CacheMode } from '../localio/engine.js';
import { RpcClient } from '../rpc/index.js';
import { encodeBytes } from '../xdr/index.js';

/** A mistake in how the command was called: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** strerror(3) texts, as shell tools print them. */
const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  EBADF: 'Bad file descriptor',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  EDQUOT: 'Disk quota exceeded',
  ESTALE: 'Stale file handle',
  EREMOTE: 'Object is remote',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
  ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENOTFOUND: 'Name or service not known',
  EAI_AGAIN: 'Temporary failure in name resolution',
  EPROTO: 'Protocol error',
  EPROGUNAVAIL: 'RPC: Program unavailable',
  EBADHANDLE: 'Invalid NFS file handle',
  ESERVERFAULT: 'Server fault',
  EJUKEBOX: 'Request initiated, but will not complete before timeout',
};

/** The code of an error, when it has one ('ENOENT'). */
export function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** What a shell tool says after the colon: "No such file or directory". */
export function describeError(err: unknown): string {
  // The deepest cause with a known code says most ("Connection refused" under an EIO of the mount).
  const chain: unknown[] = [];
  for (let e: unknown = err; e && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  const known = chain.filter((e) => STRERROR[codeOf(e) ?? '']).pop();
  if (known) {
    const text = STRERROR[codeOf(known)!]!;
    const addr = chain.map((e) => /connect to (\S+:\d+)/i.exec((e as Error)?.message ?? '')?.[1]).find((a) => a !== undefined);
    return addr ? `${text} (${addr})` : text;
  }
  const code = codeOf(err);
  if (err instanceof NfsError) {
    // "ECODE: description, syscall 'path'": keep the description.
    const m = /^[A-Z0-9_]+: (.*?)(?:, [a-z_]+(?: '.*)?)?$/s.exec(err.message);
    if (m?.[1]) return m[1].charAt(0).toUpperCase() + m[1].slice(1);
  }
  return err instanceof Error ? err.message : String(err);
}

/** An nfs:// argument (as opposed to a local path). */
export function isNfsUrl(arg: string): boolean {
  return /^nfs:\/\//i.test(arg);
}

/** An nfs:// argument as messages show it: without its query (ports, uid, ...). */
export function displayUrl(arg: string): string {
  const q = arg.indexOf('?');
  return q < 0 ? arg : arg.slice(0, q);
}

/** A path on an export: the client that mounted it, and the path inside the mount. */
export interface NfsTarget {
  client: NfsClient;
  /** Relative to the mount, '' for the mounted directory itself. */
  rel: string;
  /** The argument as messages show it. */
  display: string;
  /** Equal for targets on the same mount. */
  mountKey: string;
  /** The last component of the server path ('' for '/'). */
  name: string;
}

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/** The URL's path, lexically normalized ('..' cannot climb above '/'). */
function serverPath(u: NfsUrl): string[] {
  return components(posix.normalize('/' + u.path));
}

/** The clients of one command, one per export, closed together at the end. */
export class Session {
  private readonly mounts = new Map<string, Promise<NfsClient>>();
  private readonly exportLists = new Map<string, Promise<string[][] | undefined>>();
  private readonly opened: NfsClient[] = [];
  private closed: Promise<unknown[]> | undefined;

  /** `overrides` apply to every mount, over what the URLs say (command-line options). */
  constructor(private readonly overrides: Partial<ConnectOptions> = {}) {}

  /** Mount what `arg` (an nfs:// URL) is on and find the path inside it. */
  async resolve(arg: string): Promise<NfsTarget> {
    let u: NfsUrl;
    try {
      u = parseNfsUrl(arg);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const want = serverPath(u);
    const server = serverKey(u);
    const display = displayUrl(arg);
    const name = want[want.length - 1] ?? '';
    const exportsList = await this.exportList(server, u);
    const match = exportsList
      ?.filter((ex) => ex.length <= want.length && ex.every((c, i) => c === want[i]))
      .sort((a, b) => b.length - a.length)[0];
    if (match) {
      const client = await this.mount(server, u, match);
      return { client, rel: want.slice(match.length).join('/'), display, mountKey: `${server} /${match.join('/')}`, name };
    }
    // No export listed for it: the path itself, then its parents.
    let lastErr: unknown;
    for (let n = want.length; n >= 0; n--) {
      try {
        const client = await this.mount(server, u, want.slice(0, n));
        return { client, rel: want.slice(n).join('/'), display, mountKey: `${server} /${want.slice(0, n).join('/')}`, name };
      } catch (err) {
        lastErr ??= err;
        const code = codeOf(err);
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EACCES' && code !== 'EPERM') break;
      }
    }
    throw lastErr;
  }

  private exportList(server: string, u: NfsUrl): Promise<string[][] | undefined> {
    let p = this.exportLists.get(server);
    if (!p) {
      p = (async () => {
        const port = u.mountPort ?? (await getPort(u.host, MOUNT_V3_TABLE.prog, MOUNT_V3_TABLE.vers, u.portmapPort, 30_000));
        const rpc = new RpcClient({ host: u.host, port, prog: MOUNT_V3_TABLE.prog, vers: MOUNT_V3_TABLE.vers, timeoutMs: 30_000, reconnect: false });
        try {
          const list = await new ProgramClient(rpc, MOUNT_V3_TABLE).call('EXPORT', undefined);
          return list.map((e) => components(e.ex_dir));
        } catch (err) {
          // A server that does not list its exports may still mount them; one that cannot be reached will not.
          const code = codeOf(err);
          if (code === 'PROG_UNAVAIL' || code === 'PROC_UNAVAIL' || code === 'PROG_MISMATCH' || code === 'AUTH_ERROR' || code === 'GARBAGE_ARGS' || code === 'SYSTEM_ERR') return undefined;
          throw mountError(err, u);
        } finally {
          rpc.close();
        }
      })();
      this.exportLists.set(server, p);
    }
    return p;
  }

  private mount(server: string, u: NfsUrl, root: string[]): Promise<NfsClient> {
    const key = `${server} /${root.join('/')}`;
    let p = this.mounts.get(key);
    if (!p) {
      p = (async () => {
        if (this.closed) throw new Error('session closed');
        const client = await connect({ ...optionsFromUrl(u), path: '/' + root.join('/') }, this.overrides);
        this.opened.push(client);
        return client;
      })();
      // A failed mount is not remembered as failed for the next argument.
      p.catch(() => this.mounts.delete(key));
      this.mounts.set(key, p);
    }
    return p;
  }

  /** Close every client (write back, commit, UMNT); resolves with the errors. */
  closeAll(): Promise<unknown[]> {
    this.closed ??= (async () => {
      const errors: unknown[] = [];
      await Promise.allSettled([...this.mounts.values()]);
      for (const client of this.opened) {
        try {
          await client.close();
        } catch (err) {
          errors.push(err);
        }
      }
      return errors;
    })();
    return this.closed;
  }

  /** The counters of the command's clients: one client's stats(), or the sum of several. */
  stats(): ClientStats | undefined {
    const all = this.opened.map((c) => c.stats());
    if (all.length === 0) return undefined;
    return all.reduce((a, b) => sumStats(a, b) as ClientStats);
  }
}

function serverKey(u: NfsUrl): string {
  const params = Object.entries(u.params)
    .filter(([k]) => k !== 'version')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([u.host.toLowerCase(), u.nfsPort ?? null, u.mountPort ?? null, u.portmapPort ?? null, params]);
}

function mountError(err: unknown, u: NfsUrl): NfsError {
  if (err instanceof NfsError) return err;
  const code = codeOf(err);
  return new NfsError({ code: code && /^E[A-Z0-9]+$/.test(code) ? code : 'EIO', syscall: 'mount', path: u.path, cause: err, message: (err as Error)?.message });
}

/** Numbers added, strings joined when they differ, objects merged key by key. */
function sumStats(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (typeof a === 'string' && typeof b === 'string') return a === b ? a : [...new Set([...a.split(','), ...b.split(',')])].join(',');
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = k in out ? sumStats(out[k], v) : v;
    return out;
  }
  return a ?? b;
}

// ---- output ----

let readerGone = false;
let watching = false;

/** Whether standard output's reader went away (EPIPE): `tsnfs cat big | head`. */
export function stdoutGone(): boolean {
  return readerGone;
}

/** As a shell tool killed by SIGPIPE, end quietly when the reader of stdout goes away. */
function watchStdout(): void {
  if (watching) return;
  watching = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    readerGone = true;
    process.exit(0);
  });
}

/**
 * Write to stdout, waiting while the pipe is full. Names that are not
 * UTF-8 go out as their own bytes, as ls(1) prints them into a pipe.
 */
export async function emit(text: string): Promise<void> {
  if (readerGone || text === '') return;
  if (!process.stdout.write(encodeBytes(text))) await Promise.race([once(process.stdout, 'drain'), once(process.stdout, 'error')]);
}

// ---- running a verb ----

export interface CommonFlags {
  stats?: boolean;
  localioRead?: CacheMode;
  localioWrite?: CacheMode;
}

/** What the common flags change in every connect() of the command. */
export function connectOverrides(flags: CommonFlags): Partial<ConnectOptions> {
  const o: Partial<ConnectOptions> = {};
  if (flags.localioRead) o.localioRead = flags.localioRead;
  if (flags.localioWrite) o.localioWrite = flags.localioWrite;
  return o;
}

/** Counts failures and prints them as shell tools do: "tsnfs: cannot stat 'x': No such file or directory". */
export class Reporter {
  failures = 0;

  fail(what: string, err: unknown): void {
    if (err instanceof UsageError) throw err;
    this.failures++;
    process.stderr.write(`tsnfs: ${what}: ${describeError(err)}\n`);
  }

  /** A message of its own (no error text after it). */
  say(message: string): void {
    this.failures++;
    process.stderr.write(`tsnfs: ${message}\n`);
  }
}

/**
 * Run a client verb: `body` does the work with a session and a reporter; the
 * clients are then closed (everything written is committed) and, with
 * `--stats`, their counters printed as one JSON object on stderr. The exit
 * status is 1 when anything failed.
 */
export async function runVerb(flags: CommonFlags, body: (session: Session, report: Reporter) => Promise<void>, overrides: Partial<ConnectOptions> = {}): Promise<void> {
  watchStdout();
  const session = new Session({ ...connectOverrides(flags), ...overrides });
  const report = new Reporter();
  // Node exits when nothing is left to wait for, even with this verb unfinished: never let that pass for success.
  const unfinished = (): void => {
    if (readerGone) return;
    process.stderr.write('tsnfs: internal error: the command stopped before it finished\n');
    process.exitCode = 70;
  };
  process.once('exit', unfinished);
  let thrown: unknown;
  try {
    await body(session, report);
  } catch (err) {
    thrown = err;
  }
  for (const err of await session.closeAll()) report.fail('error while closing', err);
  if (flags.stats) {
    const s = session.stats();
    if (s) process.stderr.write(JSON.stringify(s) + '\n');
  }
  process.off('exit', unfinished);
  if (thrown !== undefined) throw thrown;
  if (report.failures > 0) process.exitCode = 1;
}

/** Adds the options every client verb has. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--stats', "print the client's counters as JSON on stderr when done")
    .option('--localio-read <mode>', 'LOCALIO reads: buffered (default), dontcache or direct (as localio_read= in URLs)', parseCacheModeOption)
    .option('--localio-write <mode>', 'LOCALIO writes: buffered (default), dontcache or direct (as localio_write= in URLs)', parseCacheModeOption);
}

/** A commander parser for octal modes ('755', '0o700'). */
export function parseMode(value: string): number {
  const v = value.replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(v)) throw new InvalidArgumentError('must be an octal mode such as 755');
  return parseInt(v, 8);
}

