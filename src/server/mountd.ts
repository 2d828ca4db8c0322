// MOUNT (program 100005), RFC 1813 appendix I: how a client gets the root
// handle of an export. Version 3 is the one NFSv3 clients use; version 1 is
// registered with the procedures whose XDR is the same as version 3's (DUMP,
// UMNT, UMNTALL, EXPORT: `showmount` asks version 1), not MNT, whose version
// 1 reply holds a 32-byte handle and ours are longer.
//
// MNT answers, as rpc.mountd does where it can:
//   MNT3ERR_NOENT   no export holds the path, or a component below the
//                   export does not exist (rpc.mountd says ACCES for a path
//                   that is not exported; NOENT says what is wrong, and
//                   EXPORT lists the exports to anyone anyway)
//   MNT3ERR_ACCES   the export's rules do not admit the client, or a
//                   `secure` rule and a source port of 1024 or above
//   MNT3ERR_NOTDIR  the path names something other than a directory
// A subdirectory of an export may be mounted (rpc.mountd allows it too),
// through symbolic links that stay inside the export; its handle belongs to
// the export, so `..` can reach the export's root but never above it.
// Components are looked up as root, as rpc.mountd stats them: the rules
// decide who mounts, not the directories' modes.
//
// The mount list (DUMP) is kept in memory: it is advisory in NFSv3 and
// rpc.mountd's own copy is notoriously stale. It is bounded.

import { FsError, FileType, type Cred } from '../fs/backend.js';
import { AuthFlavor, type CallContext, type ProgramVersion } from '../rpc/index.js';
import { MOUNT_V3_TABLE, mountstat3, type mountres3, type mountbody, type exportnode } from '../proto/mount3.gen.js';
import { type Logger, silentLogger } from '../log.js';
import { serveTable } from './program.js';
import { clientAddress, type ExportSet, type ServedExport } from './export-set.js';

const ROOT: Cred = Object.freeze({ uid: 0, gid: 0, gids: [] });
/** Symbolic links followed in one MNT path, as Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;
const MAX_MOUNT_ENTRIES = 10_000;

export interface MountdOptions {
  exports: ExportSet;
  logger?: Logger;
}

export class Mountd {
  private readonly exports: ExportSet;
  private readonly log: Logger;
  /** client address -> directories it mounted. */
  private readonly mounts = new Map<string, Set<string>>();
  private mountCount = 0;

  constructor(opts: MountdOptions) {
    this.exports = opts.exports;
    this.log = opts.logger ?? silentLogger;
  }

  /** Version 3, and version 1 without MNT. */
  programs(): ProgramVersion[] {
    const v3 = serveTable(MOUNT_V3_TABLE, {
      NULL: () => undefined,
      MNT: (p, ctx) => this.mnt(p, ctx),
      DUMP: () => this.dump(),
      UMNT: (p, ctx) => this.umnt(p, ctx),
      UMNTALL: (_, ctx) => this.umntall(ctx),
      EXPORT: () => this.exportList(),
    });
    const v1Procs = new Map(v3.procedures);
    v1Procs.delete(MOUNT_V3_TABLE.procedures[1].proc);
    return [v3, { ...v3, vers: 1, procedures: v1Procs }];
  }

  /** The mount list as DUMP reports it. */
  dump(): mountbody[] {
    const out: mountbody[] = [];
    for (const [host, dirs] of this.mounts) for (const dir of dirs) out.push({ ml_hostname: host, ml_directory: dir });
    return out;
  }

  async mnt(dirpath: string, ctx: CallContext): Promise<mountres3> {
    const host = clientAddress(ctx.conn);
    const found = this.exports.forPath(dirpath);
    if (!found) {
      this.log.info({ client: host, path: dirpath }, 'mount refused: not exported');
      return { fhs_status: mountstat3.MNT3ERR_NOENT };
    }
    const { exp, rest } = found;
    const access = this.exports.access(exp, ctx.conn);
    if (!access.ok) {
      this.log.info({ client: host, port: ctx.conn.remotePort, path: dirpath, reason: access.reason }, 'mount refused');
      return { fhs_status: mountstat3.MNT3ERR_ACCES };
    }
    let node: Buffer;
    try {
      const walked = await this.walk(exp, rest);
      if (typeof walked === 'number') return { fhs_status: walked };
      node = walked;
    } catch (err) {
      return { fhs_status: mountError(err, this.log) };
    }
    this.remember(host, dirpath);
    this.log.debug({ client: host, path: dirpath }, 'mounted');
    return {
      fhs_status: mountstat3.MNT3_OK,
      mountinfo: { fhandle: node === exp.rootNode ? exp.rootHandle : this.exports.handleOf(exp, node), auth_flavors: [AuthFlavor.SYS] },
    };
  }

  /**
   * The directory `rest` names below the export's root, following symbolic
   * links as rpc.mountd's realpath() does, but only while they stay inside
   * the export: a relative target from the link's directory, an absolute
   * one as a path the export serves. Anything leading out of the export,
   * and more than MAX_LINKS links, is NOENT.
   */
  private async walk(exp: ServedExport, rest: readonly string[]): Promise<Buffer | Exclude<mountstat3, 0>> {
    const todo = [...rest];
    const dirs = [exp.rootNode];
    let links = 0;
    for (let name = todo.shift(); name !== undefined; name = todo.shift()) {
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (dirs.length === 1) return mountstat3.MNT3ERR_NOENT;
        dirs.pop();
        continue;
      }
      const r = await exp.backend.lookup(ROOT, dirs[dirs.length - 1]!, name);
      if (r.attrs.type === FileType.LNK) {
        if (++links > MAX_LINKS) return mountstat3.MNT3ERR_NOENT;
        const { target } = await exp.backend.readlink(ROOT, r.node);
        if (target.startsWith('/')) {
          const found = this.exports.forPath(target);
          if (found?.exp !== exp) return mountstat3.MNT3ERR_NOENT;
          todo.unshift(...found.rest);
          dirs.length = 1;
        } else {
          todo.unshift(...target.split('/'));
        }
        continue;
      }
      if (r.attrs.type !== FileType.DIR) return mountstat3.MNT3ERR_NOTDIR;
      dirs.push(r.node);
    }
    return dirs[dirs.length - 1]!;
  }

  umnt(dirpath: string, ctx: CallContext): void {
    const host = clientAddress(ctx.conn);
    const dirs = this.mounts.get(host);
    if (dirs?.delete(dirpath)) {
      this.mountCount--;
      if (dirs.size === 0) this.mounts.delete(host);
    }
  }

  umntall(ctx: CallContext): void {
    const host = clientAddress(ctx.conn);
    const dirs = this.mounts.get(host);
    if (dirs) {
      this.mountCount -= dirs.size;
      this.mounts.delete(host);
    }
  }

  exportList(): exportnode[] {
    return this.exports.list().map((e) => ({ ex_dir: e.path, ex_groups: e.rules.clients.map((c) => ({ gr_name: c.client })) }));
  }

  private remember(host: string, dir: string): void {
    let dirs = this.mounts.get(host);
    if (dirs?.has(dir)) return;
    if (this.mountCount >= MAX_MOUNT_ENTRIES) {
      this.log.warn({ client: host, path: dir }, 'mount list full; not recording this mount');
      return;
    }
    if (!dirs) this.mounts.set(host, (dirs = new Set()));
    dirs.add(dir);
    this.mountCount++;
  }
}

function mountError(err: unknown, log: Logger): Exclude<mountstat3, 0> {
  const code = err instanceof FsError ? err.code : undefined;
  switch (code) {
    case 'ENOENT':
    case 'ESTALE':
      return mountstat3.MNT3ERR_NOENT;
    case 'ENOTDIR':
      return mountstat3.MNT3ERR_NOTDIR;
    case 'EACCES':
    case 'EPERM':
      return mountstat3.MNT3ERR_ACCES;
    case 'EINVAL':
      return mountstat3.MNT3ERR_INVAL;
    case 'ENAMETOOLONG':
      return mountstat3.MNT3ERR_NAMETOOLONG;
    default:
      log.error({ err }, 'MNT failed');
      return mountstat3.MNT3ERR_IO;
  }
}
