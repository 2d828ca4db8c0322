// startServer: composes the RPC server, the portmapper and the NFS programs
// into one running server, as `tsnfs serve` and embedders use it.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RpcServer, RpcClient } from '../rpc/index.js';
import { PMAP_VERS_TABLE } from '../proto/portmap.gen.js';
import { type Logger, silentLogger } from '../log.js';
import { registerPortmapper } from './portmapper.js';
import { IPPROTO_TCP, PortmapRegistry } from './portmap-registry.js';

export const version = (JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;

export interface ServeOptions {
  /** Directory to export (default ./export). */
  dir?: string;
  exportsFile?: string;
  host?: string;
  nfsPort?: number;
  mountPort?: number;
  /** 0 disables the portmapper. */
  portmapPort?: number;
  stateDir?: string;
  metrics?: string;
  localio?: boolean;
  logger?: Logger;
}

export interface RunningServer {
  readonly version: string;
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** 0 when the portmapper is off (or another one on this host took our registrations). */
  readonly portmapPort: number;
  readonly rpc: RpcServer;
  /** Lines telling a user how to reach the server. */
  describe(): string[];
  close(): Promise<void>;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** 2049/2049/111 as root; high ports otherwise. */
export function defaultPorts(): { nfs: number; mount: number; portmap: number } {
  return isRoot() ? { nfs: 2049, mount: 2049, portmap: 111 } : { nfs: 20490, mount: 20490, portmap: 10111 };
}

export async function startServer(opts: ServeOptions = {}): Promise<RunningServer> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const defaults = defaultPorts();
  const registry = new PortmapRegistry();
  const rpc = new RpcServer({ logger: log });

  const nfsPort = await rpc.listen(opts.nfsPort ?? defaults.nfs, host);
  // MOUNT shares the NFS listener unless given a port of its own.
  const mountPort = opts.mountPort === undefined || opts.mountPort === opts.nfsPort ? nfsPort : await rpc.listen(opts.mountPort, host);

  const pm = new RpcServer({ logger: log });
  registerPortmapper(pm, registry, host);
  let portmapPort = 0;
  const external: RpcClient[] = [];
  const wantPortmap = opts.portmapPort ?? defaults.portmap;
  if (wantPortmap !== 0) {
    try {
      portmapPort = await pm.listen(wantPortmap, host);
      for (const v of [2, 3, 4]) registry.set({ prog: PMAP_VERS_TABLE.prog, vers: v, prot: IPPROTO_TCP, port: portmapPort, owner: 'superuser' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || wantPortmap !== 111) throw err;
      // A system portmapper (rpcbind) owns 111: register with it instead.
      log.info('port 111 is taken; registering with the portmapper already running');
      external.push(new RpcClient({ host: '127.0.0.1', port: 111, prog: PMAP_VERS_TABLE.prog, vers: 2, timeoutMs: 5000, reconnect: false }));
    }
  }

  const programs: { prog: number; vers: number; port: number }[] = [];
  for (const { prog, vers } of rpc.registered()) programs.push({ prog, vers, port: nfsPort });
  for (const p of programs) registry.set({ prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: p.port, owner: 'tsnfs' });
  for (const c of external) {
    const set = PMAP_VERS_TABLE.procedures[1];
    for (const p of programs) await c.call(set.proc, (w) => set.encodeArgs(w, { prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: p.port }), set.decodeRes);
  }

  return {
    version,
    host,
    nfsPort,
    mountPort,
    portmapPort,
    rpc,
    describe: () => [`NFS ${host}:${nfsPort}`, `MOUNT ${host}:${mountPort}`],
    async close() {
      for (const c of external) {
        const unset = PMAP_VERS_TABLE.procedures[2];
        for (const p of programs) await c.call(unset.proc, (w) => unset.encodeArgs(w, { prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: 0 }), unset.decodeRes).catch(() => false);
        c.close();
      }
      await Promise.all([rpc.close(), pm.close()]);
    },
  };
}
