// Builds the initramfs for the kernel-client test VM: Debian's cloud kernel
// modules (virtio networking and the NFSv3 client), a static busybox, and
// guest.sh as /init. The archive is a plain (uncompressed) newc cpio written
// here directly, so no staging directory, no root (for /dev/console) and no
// cpio binary are needed. It is cached by kernel version and content hash.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

const execFileP = promisify(execFile);

/** Bumped whenever the archive layout changes, to invalidate old caches. */
const FORMAT_VERSION = 1;

/** Modules the guest needs; their dependencies are resolved with modprobe. */
export const GUEST_MODULES = ['virtio_pci', 'virtio_net', 'nfsv3'];

export const DEFAULT_CACHE_DIR = join(tmpdir(), 'tsnfs-kernel');

export interface CloudKernel {
  /** e.g. 6.1.0-28-cloud-amd64 */
  version: string;
  /** /boot/vmlinuz-<version> */
  vmlinuz: string;
  /** /lib/modules/<version> */
  modulesDir: string;
}

/** Compares kernel version strings numerically where they are numbers. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isInteger(nx) && Number.isInteger(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** The newest installed Debian cloud kernel (linux-image-cloud-amd64) with its modules, or null. */
export function findCloudKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): CloudKernel | null {
  let names: string[];
  try {
    names = readdirSync(bootDir);
  } catch {
    return null;
  }
  const versions = names
    .filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join(modulesRoot, v, 'modules.dep')))
    .sort(compareVersions);
  const version = versions.at(-1);
  if (version === undefined) return null;
  return { version, vmlinuz: join(bootDir, `vmlinuz-${version}`), modulesDir: join(modulesRoot, version) };
}

/** True when the file is an ELF executable without a program interpreter (statically linked). */
export function isStaticElf(path: string): boolean {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return false;
  }
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > buf.length) return false;
    if (buf.readUInt32LE(off) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** A statically linked busybox (Debian's busybox-static), or null. */
export function findStaticBusybox(): string | null {
  for (const p of ['/bin/busybox', '/usr/bin/busybox', '/sbin/busybox', '/usr/sbin/busybox']) {
    if (existsSync(p) && isStaticElf(p)) return p;
  }
  return null;
}

/** Finds an executable by name on PATH and in the sbin directories. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The module files to load, in dependency order, as
 * `modprobe -a -S KVER --show-depends` prints them. (Without -a, modprobe takes
 * every name after the first as a parameter of the first module.)
 */
export async function resolveModules(kernelVersion: string, modules: string[] = GUEST_MODULES): Promise<string[]> {
  const modprobe = findExecutable('modprobe');
  if (!modprobe) throw new Error('modprobe not found (package kmod)');
  const { stdout } = await execFileP(modprobe, ['-a', '-S', kernelVersion, '--show-depends', ...modules]);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^insmod\s+(\S+)/.exec(line.trim());
    if (!m) continue; // "builtin NAME" needs nothing
    const path = m[1]!;
    if (seen.has(path)) continue;
    seen.add(path);
    out.push(path);
  }
  if (out.length === 0) throw new Error(`modprobe --show-depends printed no modules for ${modules.join(' ')}`);
  return out;
}

/** A module's bytes, decompressed to a plain .ko that busybox insmod can load. */
async function moduleBytes(path: string): Promise<{ name: string; data: Buffer }> {
  const raw = await readFile(path);
  const base = basename(path);
  if (base.endsWith('.ko')) return { name: base, data: raw };
  if (base.endsWith('.ko.gz')) return { name: base.slice(0, -3), data: gunzipSync(raw) };
  const tool = base.endsWith('.ko.xz') ? 'xz' : base.endsWith('.ko.zst') ? 'zstd' : null;
  if (!tool) throw new Error(`unknown module format: ${path}`);
  const { stdout } = await execFileP(tool, ['-dc', path], { encoding: 'buffer', maxBuffer: 64 << 20 });
  return { name: base.replace(/\.(xz|zst)$/, ''), data: stdout };
}

/** The guest script: next to this module when run from the source tree, else in the source tree beside dist/. */
export function guestScriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'guest.sh'), join(here, '..', '..', '..', 'test', 'kernel', 'guest.sh')];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`guest.sh not found (looked in ${candidates.join(', ')})`);
}

// ---------------------------------------------------------------------------
// newc cpio writer

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Encodes entries as a "newc" (SVR4, no CRC) cpio archive, owned by root, with the trailer. */
export function writeNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const hex = (v: number) => (v >>> 0).toString(16).padStart(8, '0');
  const push = (e: CpioEntry, inode: number) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0', 'utf8');
    const header =
      '070701' +
      hex(inode) +
      hex(e.mode) +
      hex(0) + // uid
      hex(0) + // gid
      hex((e.mode & 0o170000) === S_IFDIR ? 2 : 1) +
      hex(0) + // mtime: fixed, so equal inputs give equal archives
      hex(data.length) +
      hex(0) +
      hex(0) +
      hex(e.rdevMajor ?? 0) +
      hex(e.rdevMinor ?? 0) +
      hex(name.length) +
      hex(0);
    parts.push(Buffer.from(header, 'ascii'), name, Buffer.alloc(pad4(110 + name.length)));
    if (data.length > 0) parts.push(data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) push(e, ino++);
  push({ name: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------

export interface InitramfsOptions {
  /** Where built archives are kept; default os.tmpdir()/tsnfs-kernel. */
  cacheDir?: string;
  /** Kernel to build for; default: the newest cloud kernel in /boot. */
  kernel?: CloudKernel;
  /** Rebuild even when a cached archive exists. */
  force?: boolean;
}

export interface Initramfs {
  /** The cpio archive to pass to qemu -initrd. */
  path: string;
  kernel: CloudKernel;
  /** Module files packed, in load order. */
  modules: string[];
  /** True when an existing archive was reused. */
  cached: boolean;
  bytes: number;
}

/** Builds (or reuses from the cache) the test VM's initramfs. */
export async function buildInitramfs(opts: InitramfsOptions = {}): Promise<Initramfs> {
  const kernel = opts.kernel ?? findCloudKernel();
  if (!kernel) throw new Error('no Debian cloud kernel in /boot (apt-get install linux-image-cloud-amd64)');
  const busybox = findStaticBusybox();
  if (!busybox) throw new Error('no static busybox (apt-get install busybox-static)');
  const script = await readFile(guestScriptPath());
  const modules = await resolveModules(kernel.version);

  const hash = createHash('sha256');
  hash.update(`format ${FORMAT_VERSION}\nkernel ${kernel.version}\n`);
  hash.update(script);
  const bb = await stat(busybox);
  hash.update(`busybox ${busybox} ${bb.size} ${bb.mtimeMs}\n`);
  for (const m of modules) {
    const s = await stat(m);
    hash.update(`module ${m} ${s.size} ${s.mtimeMs}\n`);
  }
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const path = join(cacheDir, `initramfs-${kernel.version}-${hash.digest('hex').slice(0, 16)}.cpio`);

  if (!opts.force) {
    try {
      const s = await stat(path);
      if (s.size > 0) return { path, kernel, modules, cached: true, bytes: s.size };
    } catch {
      // not built yet
    }
  }

  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'mnt', 'etc', 'lib', 'lib/modules', 'root']) {
    entries.push({ name: d, mode: S_IFDIR | (d === 'tmp' ? 0o1777 : 0o755) });
  }
  entries.push({ name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ name: 'dev/null', mode: S_IFCHR | 0o666, rdevMajor: 1, rdevMinor: 3 });
  entries.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: await readFile(busybox) });
  entries.push({ name: 'bin/sh', mode: S_IFLNK | 0o777, data: Buffer.from('busybox') });
  entries.push({ name: 'init', mode: S_IFREG | 0o755, data: script });
  const names: string[] = [];
  for (const m of modules) {
    const { name, data } = await moduleBytes(m);
    if (names.includes(name)) throw new Error(`two modules named ${name}`);
    names.push(name);
    entries.push({ name: `lib/modules/${name}`, mode: S_IFREG | 0o644, data });
  }
  entries.push({ name: 'etc/tsnfs-modules', mode: S_IFREG | 0o644, data: Buffer.from(names.join('\n') + '\n') });
  const archive = writeNewc(entries);

  await mkdir(cacheDir, { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, archive);
    await rename(tmp, path); // atomic: concurrent builders each write a whole file
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return { path, kernel, modules, cached: false, bytes: archive.length };
}
