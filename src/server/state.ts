// The server's state directory: what must survive a restart so that mounted
// clients keep working (the handle secret, the export ids) and what must
// change on every start (the boot counter behind the write verifier).
//
// Layout (all files replaced atomically: temp file, fsync, rename, fsync dir):
//   secret        32 random bytes, mode 0600, created once and never rewritten
//   boot          decimal boot counter, incremented on every open
//   exports.json  { "version": 1, "ids": { "<export path>": <u32> } }
//
// Everything here runs at startup or when the exports change, so it is
// synchronous: simpler, and nothing is waiting on the event loop yet.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';

export const SECRET_BYTES = 32;
export const WRITE_VERIFIER_BYTES = 8;

const SECRET_FILE = 'secret';
const BOOT_FILE = 'boot';
const EXPORTS_FILE = 'exports.json';

export interface ServerState {
  readonly dir: string;
  /** The handle secret (32 bytes). */
  readonly secret: Buffer;
  /** 1 on the first start with this directory, +1 on every start after. */
  readonly bootCount: number;
  /** Milliseconds since the epoch when this state was opened. */
  readonly startTime: number;
  /** NFSv3 writeverf3: differs on every start, so clients resend uncommitted writes. */
  readonly writeVerifier: Buffer;
  /** A stable 32-bit id for an export path (allocated and saved on first use; never 0). */
  exportId(exportPath: string): number;
}

export interface OpenStateOptions {
  /** Clock for the write verifier (tests). */
  now?: () => number;
}

export class StateError extends Error {
  override name = 'StateError';
}

/**
 * `$XDG_STATE_HOME/tsnfs` or `~/.local/state/tsnfs` for users, and
 * `/var/lib/tsnfs` for root (a system service has no meaningful home).
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  if (uid === 0) return '/var/lib/tsnfs';
  const xdg = env.XDG_STATE_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'tsnfs');
  return path.join(env.HOME || os.homedir(), '.local', 'state', 'tsnfs');
}

export function openState(dir: string = defaultStateDir(), opts: OpenStateOptions = {}): ServerState {
  const abs = path.resolve(dir);
  ensureDir(abs);
  const secret = loadOrCreateSecret(abs);
  const bootCount = bumpBootCount(abs);
  const startTime = (opts.now ?? Date.now)();
  const writeVerifier = makeWriteVerifier(bootCount, startTime);
  const ids = new ExportIds(abs);
  return {
    dir: abs,
    secret,
    bootCount,
    startTime,
    writeVerifier,
    exportId: (p) => ids.get(p),
  };
}

/**
 * Boot counter in the high half (strictly increasing while the directory
 * lives), start time in milliseconds in the low half (so a lost directory,
 * which restarts the counter, still gives a new verifier).
 */
export function makeWriteVerifier(bootCount: number, startTimeMs: number): Buffer {
  const v = Buffer.alloc(WRITE_VERIFIER_BYTES);
  v.writeUInt32BE(bootCount >>> 0, 0);
  v.writeUInt32BE(Math.floor(startTimeMs) % 0x1_0000_0000, 4);
  return v;
}

function ensureDir(dir: string): void {
  const created = fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; say exactly what we mean.
  if (created !== undefined) fs.chmodSync(dir, 0o700);
  if (!fs.statSync(dir).isDirectory()) throw new StateError(`state dir ${dir} is not a directory`);
}

function loadOrCreateSecret(dir: string): Buffer {
  const file = path.join(dir, SECRET_FILE);
  const existing = readIfExists(file);
  if (existing) return checkSecret(file, existing);
  const tmp = writeTemp(dir, SECRET_FILE, crypto.randomBytes(SECRET_BYTES), 0o600);
  try {
    // link(2) fails if another process created the secret first: both then use theirs.
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(dir);
  return checkSecret(file, fs.readFileSync(file));
}

function checkSecret(file: string, data: Buffer): Buffer {
  // A damaged secret must not be silently replaced: that would invalidate every handle.
  if (data.length !== SECRET_BYTES) throw new StateError(`${file}: expected ${SECRET_BYTES} bytes, found ${data.length}`);
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  return data;
}

function bumpBootCount(dir: string): number {
  const file = path.join(dir, BOOT_FILE);
  const text = readIfExists(file)?.toString('utf8').trim();
  let prev = 0;
  if (text !== undefined) {
    if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffff_ffff) throw new StateError(`${file}: not a boot counter: ${JSON.stringify(text.slice(0, 32))}`);
    prev = Number(text);
  }
  const next = prev >= 0xffff_ffff ? 1 : prev + 1;
  writeAtomic(dir, BOOT_FILE, Buffer.from(`${next}\n`), 0o600);
  return next;
}

/** Export path -> id, persisted; ids are never reused for another path. */
class ExportIds {
  private readonly file: string;
  private readonly ids = new Map<string, number>();
  private readonly used = new Set<number>();

  constructor(private readonly dir: string) {
    this.file = path.join(dir, EXPORTS_FILE);
    const data = readIfExists(this.file);
    if (data) this.load(data);
  }

  get(exportPath: string): number {
    const key = normalizeExportPath(exportPath);
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const id = this.allocate(key);
    this.ids.set(key, id);
    this.used.add(id);
    this.save();
    return id;
  }

  private load(data: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch (err) {
      throw new StateError(`${this.file}: ${(err as Error).message}`);
    }
    const ids = (parsed as { ids?: unknown } | null)?.ids;
    if (typeof ids !== 'object' || ids === null) throw new StateError(`${this.file}: no "ids" object`);
    for (const [p, id] of Object.entries(ids)) {
      if (!Number.isInteger(id) || id < 1 || id > 0xffff_ffff || this.used.has(id)) throw new StateError(`${this.file}: bad id for ${p}`);
      this.ids.set(p, id);
      this.used.add(id);
    }
  }

  /** Derived from the path, so a lost map still tends to give the same ids. */
  private allocate(key: string): number {
    let id = crypto.createHash('sha256').update(key).digest().readUInt32BE(0);
    while (id === 0 || this.used.has(id)) id = (id + 1) >>> 0;
    return id;
  }

  private save(): void {
    const ids: Record<string, number> = {};
    for (const [p, id] of this.ids) ids[p] = id;
    writeAtomic(this.dir, EXPORTS_FILE, Buffer.from(JSON.stringify({ version: 1, ids }, null, 2) + '\n'), 0o600);
  }
}

/** `/srv/x/` and `/srv//x` are the same export as `/srv/x`. */
export function normalizeExportPath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function readIfExists(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write and fsync a new temp file next to `name`; returns its path. */
function writeTemp(dir: string, name: string, data: Buffer, mode: number): string {
  const tmp = path.join(dir, `.${name}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  return tmp;
}

function writeAtomic(dir: string, name: string, data: Buffer, mode: number): void {
  const tmp = writeTemp(dir, name, data, mode);
  try {
    fs.renameSync(tmp, path.join(dir, name));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Makes a rename or link durable. */
function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
