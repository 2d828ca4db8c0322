// The portmapper's table: which program/version/protocol is at which port.
// Shared by the version 2 (port numbers) and rpcbind 3/4 (universal address)
// views of the same registrations.

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export interface Registration {
  prog: number;
  vers: number;
  prot: number; // IPPROTO_TCP or IPPROTO_UDP
  port: number;
  owner: string;
}

export class PortmapRegistry {
  private readonly regs: Registration[] = [];

  /** Register; false when the program/version/protocol is already mapped (RFC 1833). */
  set(r: Registration): boolean {
    if (this.regs.some((x) => x.prog === r.prog && x.vers === r.vers && x.prot === r.prot)) return false;
    this.regs.push({ ...r });
    return true;
  }

  /** Remove every mapping of the program and version, whatever the protocol. */
  unset(prog: number, vers: number): boolean {
    let removed = false;
    for (let i = this.regs.length - 1; i >= 0; i--) {
      const x = this.regs[i]!;
      if (x.prog === prog && x.vers === vers) {
        this.regs.splice(i, 1);
        removed = true;
      }
    }
    return removed;
  }

  /** The port for the program and protocol; a version match is preferred, else any version (as rpcbind). */
  getport(prog: number, vers: number, prot: number): number {
    const same = this.regs.filter((x) => x.prog === prog && x.prot === prot);
    return (same.find((x) => x.vers === vers) ?? same[0])?.port ?? 0;
  }

  dump(): readonly Registration[] {
    return this.regs;
  }
}

/** "tcp"/"udp" (and the IPv6 netids) for a protocol number. */
export function netidOf(prot: number, ipv6 = false): string {
  const base = prot === IPPROTO_UDP ? 'udp' : 'tcp';
  return ipv6 ? `${base}6` : base;
}

export function protOfNetid(netid: string): number | undefined {
  if (netid === 'tcp' || netid === 'tcp6') return IPPROTO_TCP;
  if (netid === 'udp' || netid === 'udp6') return IPPROTO_UDP;
  return undefined;
}

/** RFC 5665 universal address: "h1.h2.h3.h4.p1.p2" (IPv4) or "v6addr.p1.p2". */
export function toUniversalAddress(host: string, port: number): string {
  return `${host}.${port >> 8}.${port & 0xff}`;
}

export function fromUniversalAddress(uaddr: string): { host: string; port: number } | undefined {
  const m = /^(.*)\.(\d{1,3})\.(\d{1,3})$/.exec(uaddr);
  if (!m) return undefined;
  const hi = Number(m[2]);
  const lo = Number(m[3]);
  if (hi > 255 || lo > 255) return undefined;
  return { host: m[1]!, port: hi * 256 + lo };
}
