// The portmapper (program 100000): version 2 (RFC 1833 section 3) and
// rpcbind versions 3 and 4 (section 2) over one registration table. Only
// callers on this host may SET or UNSET, as rpcbind does.

import { RpcServer } from '../rpc/index.js';
import { PMAP_VERS_TABLE, RPCBVERS_TABLE, RPCBVERS4_TABLE, type rpcb, type rpcblist_ptr } from '../proto/portmap.gen.js';
import { serveTable } from './program.js';
import { fromUniversalAddress, IPPROTO_TCP, netidOf, PortmapRegistry, protOfNetid, toUniversalAddress } from './portmap-registry.js';
import type { CallContext } from '../rpc/index.js';

function isLocal(ctx: CallContext): boolean {
  const a = ctx.conn.remoteAddress;
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

/** Register the portmapper's three versions on an RpcServer. */
export function registerPortmapper(rpc: RpcServer, registry: PortmapRegistry, host: string): void {
  rpc.register(
    serveTable(PMAP_VERS_TABLE, {
      NULL: () => undefined,
      SET: (m, ctx) => isLocal(ctx) && registry.set({ ...m, owner: 'unknown' }),
      UNSET: (m, ctx) => isLocal(ctx) && registry.unset(m.prog, m.vers),
      GETPORT: (m) => registry.getport(m.prog, m.vers, m.prot),
      DUMP: () => registry.dump().map((r) => ({ map: { prog: r.prog, vers: r.vers, prot: r.prot, port: r.port } })),
    }),
  );

  const toRpcb = (r: { prog: number; vers: number; prot: number; port: number; owner: string }): rpcb => ({
    r_prog: r.prog,
    r_vers: r.vers,
    r_netid: netidOf(r.prot, host.includes(':')),
    r_addr: toUniversalAddress(host, r.port),
    r_owner: r.owner,
  });
  const set = (a: rpcb, ctx: CallContext): boolean => {
    const prot = protOfNetid(a.r_netid);
    const addr = fromUniversalAddress(a.r_addr);
    if (!isLocal(ctx) || prot === undefined || !addr) return false;
    return registry.set({ prog: a.r_prog, vers: a.r_vers, prot, port: addr.port, owner: a.r_owner });
  };
  const unset = (a: rpcb, ctx: CallContext): boolean => isLocal(ctx) && registry.unset(a.r_prog, a.r_vers);
  const getaddr = (a: rpcb, exact: boolean): string => {
    const prot = protOfNetid(a.r_netid || 'tcp') ?? IPPROTO_TCP;
    const match = registry.dump().filter((r) => r.prog === a.r_prog && r.prot === prot);
    const hit = match.find((r) => r.vers === a.r_vers) ?? (exact ? undefined : match[0]);
    return hit ? toUniversalAddress(host, hit.port) : '';
  };
  const dump = (): rpcblist_ptr => registry.dump().map((r) => ({ rpcb_map: toRpcb(r) }));
  const gettime = (): number => Math.floor(Date.now() / 1000);

  rpc.register(
    serveTable(RPCBVERS_TABLE, {
      NULL: () => undefined,
      SET: set,
      UNSET: unset,
      GETADDR: (a) => getaddr(a, false),
      DUMP: dump,
      GETTIME: gettime,
    }),
  );
  rpc.register(
    serveTable(RPCBVERS4_TABLE, {
      NULL: () => undefined,
      SET: set,
      UNSET: unset,
      GETADDR: (a) => getaddr(a, false),
      GETVERSADDR: (a) => getaddr(a, true),
      DUMP: dump,
      GETTIME: gettime,
    }),
  );
}
