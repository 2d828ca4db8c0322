// `tsnfs doctor`: what this machine offers tsnfs, in a few lines: Node, the
// native addon, the state directory, the NFS tools found, and which of the
// default ports are taken (with what a portmapper there has registered).

import { Command } from 'commander';
import { accessSync, constants, existsSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { ProgramClient } from '../client/index.js';
import { PMAP_VERS_TABLE } from '../proto/portmap.gen.js';
import { RpcClient } from '../rpc/index.js';
import { defaultPorts } from '../server/ports.js';
import { defaultStateDir } from '../server/state.js';

/** Optional tools, and the Debian package of each. */
const TOOLS: Array<[string, string]> = [
  ['rpcinfo', 'rpcbind'],
  ['rpcbind', 'rpcbind'],
  ['nfs-ls', 'libnfs-utils'],
  ['nfs-cp', 'libnfs-utils'],
  ['nfs-cat', 'libnfs-utils'],
  ['ganesha.nfsd', 'nfs-ganesha'],
  ['mount.nfs', 'nfs-common'],
];

const PROGRAMS: Record<number, string> = { 100000: 'portmapper', 100003: 'nfs', 100005: 'mountd', 100021: 'nlockmgr', 100024: 'status', 100227: 'nfs_acl', 400122: 'localio' };

function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The native addon's status through a guarded import: the addon is optional, and may not be in this build at all. */
async function nativeLine(): Promise<string> {
  for (const spec of ['../native/index.js', '../native/loader.js']) {
    let mod: { nativeStatus?: () => unknown };
    try {
      mod = (await import(spec)) as { nativeStatus?: () => unknown };
    } catch {
      continue;
    }
    if (typeof mod.nativeStatus !== 'function') continue;
    const s = mod.nativeStatus() as { available?: boolean; reason?: string; path?: string } | string;
    if (typeof s === 'string') return s;
    if (s.available) return `available${s.path ? ` (${s.path})` : ''}`;
    return `not available${s.reason ? `: ${s.reason}` : ''}`;
  }
  return 'not built';
}

function inUse(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), 1000);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** What a portmapper on `port` has registered, one short line per program, or undefined when none answers. */
async function registrations(port: number, host: string): Promise<string[] | undefined> {
  const rpc = new RpcClient({ host, port, prog: PMAP_VERS_TABLE.prog, vers: PMAP_VERS_TABLE.vers, timeoutMs: 2000, reconnect: false });
  try {
    const list = await new ProgramClient(rpc, PMAP_VERS_TABLE).call('DUMP', undefined);
    const byProg = new Map<number, Set<string>>();
    for (const { map } of list) {
      const key = `v${map.vers} ${map.prot === 6 ? 'tcp' : map.prot === 17 ? 'udp' : map.prot}/${map.port}`;
      let s = byProg.get(map.prog);
      if (!s) byProg.set(map.prog, (s = new Set()));
      s.add(key);
    }
    return [...byProg].map(([prog, s]) => `${PROGRAMS[prog] ?? prog}: ${[...s].join(', ')}`);
  } catch {
    return undefined;
  } finally {
    rpc.close();
  }
}

export async function doctor(host: string): Promise<string[]> {
  const lines: string[] = [];
  const { version } = await import('../server/index.js');
  lines.push(`tsnfs ${version}`);
  lines.push(`node: ${process.version} (${process.platform} ${process.arch})`);
  lines.push(`native addon: ${await nativeLine()}`);
  const { localioDoctorLine } = await import('../localio/index.js');
  lines.push(localioDoctorLine());
  const state = defaultStateDir();
  lines.push(`state dir: ${state}${existsSync(state) ? '' : ' (not created yet)'}`);
  lines.push('tools:');
  const width = Math.max(...TOOLS.map(([t]) => t.length));
  for (const [tool, pkg] of TOOLS) lines.push(`  ${tool.padEnd(width)}  ${which(tool) ?? `not found (apt-get install ${pkg})`}`);
  const ports: Array<[number, string, boolean]> = [
    [2049, 'NFS and MOUNT (default as root)', false],
    [111, 'portmapper (default as root)', true],
    [20490, 'NFS and MOUNT (default as a user)', false],
    [10111, 'portmapper (default as a user)', true],
  ];
  const mine = defaultPorts();
  lines.push(`ports on ${host} (this user's defaults: NFS ${mine.nfs}, portmapper ${mine.portmap}):`);
  for (const [port, what, portmapper] of ports) {
    const used = await inUse(port, host);
    lines.push(`  ${String(port).padEnd(5)}  ${used ? 'in use' : 'free  '}  ${what}`);
    if (used && portmapper) for (const r of (await registrations(port, host)) ?? []) lines.push(`         ${r}`);
  }
  return lines;
}

export function doctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('report Node, the native addon, the state directory, NFS tools and ports in use')
    .option('--host <host>', 'address whose ports are checked', '127.0.0.1')
    .action(async (o: { host: string }) => {
      process.stdout.write((await doctor(o.host)).join('\n') + '\n');
    });
}
