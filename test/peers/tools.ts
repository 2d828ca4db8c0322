// Which real peers (reference servers, clients, dissectors) this machine has,
// and a one-line reason to skip a test when one is absent:
//
//   test('decodes', { skip: missing('tshark', 'dumpcap') }, async () => { ... });
//
// Lookup is `which`-style over PATH, plus the sbin directories a non-root PATH
// often lacks (rpcbind, rpcinfo and mkfs.xfs live there).

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The Debian package that provides each tool the harness knows about. */
export const TOOL_PACKAGES = {
  rpcinfo: 'rpcbind',
  rpcbind: 'rpcbind',
  'ganesha.nfsd': 'nfs-ganesha',
  'nfs-ls': 'libnfs-utils',
  'nfs-cp': 'libnfs-utils',
  'nfs-cat': 'libnfs-utils',
  tshark: 'tshark',
  dumpcap: 'tshark',
  'qemu-system-x86_64': 'qemu-system-x86',
  fio: 'fio',
  'mkfs.xfs': 'xfsprogs',
  xfs_io: 'xfsprogs',
  losetup: 'mount',
} as const;

export type ToolName = keyof typeof TOOL_PACKAGES;

const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const cache = new Map<string, string | null>();

/** The absolute path of an executable, or null when none is found. */
export function which(name: string): string | null {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let found: string | null = null;
  if (name.includes('/')) {
    found = isExecutable(name) ? name : null;
  } else {
    const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS];
    for (const dir of dirs) {
      if (!dir) continue;
      const p = join(dir, name);
      if (isExecutable(p)) {
        found = p;
        break;
      }
    }
  }
  cache.set(name, found);
  return found;
}

/** Like which(), but throws a message naming the package when the tool is absent. */
export function requireTool(name: ToolName): string {
  const p = which(name);
  if (!p) throw new Error(`${name} not installed (apt-get install ${TOOL_PACKAGES[name]})`);
  return p;
}

/**
 * False when every named tool is present, else a one-line reason such as
 * "tshark not installed (apt-get install tshark)". Suits node:test's `skip`.
 */
export function missing(...names: ToolName[]): false | string {
  const absent = names.filter((n) => which(n) === null);
  if (absent.length === 0) return false;
  const pkgs = [...new Set(absent.map((n) => TOOL_PACKAGES[n]))];
  const what = absent.join(', ');
  return `${what} not installed (apt-get install ${pkgs.join(' ')})`;
}

/** The first reason that is not false, or false: `firstReason(missing('x'), notRoot())`. */
export function firstReason(...reasons: Array<false | string>): false | string {
  for (const r of reasons) if (r) return r;
  return false;
}

/** A skip reason when the process is not root (nfs-ganesha's VFS backend and capturing need it). */
export function notRoot(why = 'needs root'): false | string {
  return process.getuid?.() === 0 ? false : why;
}

function isExecutable(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
