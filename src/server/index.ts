// startServer: composes the RPC server, the portmapper, MOUNT and NFSv3 into
// one running server, as `tsnfs serve` and embedders use it.
//
// What is exported, in order of precedence:
//   `exports` (parsed rules) or `exportsFile` (an exports(5) file)
//   `dir`      one directory, to everyone, rw, root_squash, insecure
//              (exportsForDir); created when missing
//   `backend`  alone: one export at "/" (or at `dir`, which then only names
//              the export and is not touched on disk)
//   `backends` alone: each path exported with `dir`'s rules
//   nothing    no exports: MNT answers MNT3ERR_NOENT
// Each export is served by `backends[path]`, else `backend` (for the one
// export it names), else a LocalBackend over the directory. Backends passed
// in stay the embedder's: close() does not close them.
//
// State: `stateDir`, else the default state directory when a directory is
// exported, else (only embedder backends, or nothing) state kept in memory:
// handles then last as long as the process, as do in-memory backends.

import { defaultPorts } from './ports.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RpcServer, RpcClient } from '../rpc/index.js';
import { PMAP_VERS_TABLE } from '../proto/portmap.gen.js';
import { MOUNT_PROGRAM } from '../proto/mount3.gen.js';
import type { Backend } from '../fs/backend.js';
import { LocalBackend } from '../fs/local.js';
import { type Logger, silentLogger } from '../log.js';
import { registerPortmapper } from './portmapper.js';
import { IPPROTO_TCP, PortmapRegistry } from './portmap-registry.js';
import { defaultStateDir, makeWriteVerifier, normalizeExportPath, openState, SECRET_BYTES, type ServerState } from './state.js';
import { exportsForDir, formatOptions, parseExports, type Export } from './exports.js';
import { DuplicateRequestCache, type DrcOptions } from './drc.js';
import { ServerStats, type MetricsServer } from './stats.js';
import { ExportSet, type ServedExport } from './export-set.js';
import { Mountd } from './mountd.js';
import { Nfs3Server } from './nfs3.js';
import { tuneGcForServing } from './gc.js';
import { LOCALIO_PROGRAM } from '../proto/localio.gen.js';
import { LocalioServer } from '../localio/server.js';

export const version = (JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;

export interface ServeOptions {
  /** Directory to export (`tsnfs serve DIR`); with `backend`, the export's path only. */
  dir?: string;
  /** An exports(5) file. */
  exportsFile?: string;
  /** Export rules already parsed (instead of `exportsFile`). */
  exports?: readonly Export[];
  /** Storage for the one export named by `dir` (or "/"), instead of a directory. */
  backend?: Backend;
  /** Storage per export path (absolute, normalized), for exports from `exports`/`exportsFile`. */
  backends?: Readonly<Record<string, Backend>>;
  host?: string;
  nfsPort?: number;
  mountPort?: number;
  /** 0 disables the portmapper. */
  portmapPort?: number;
  stateDir?: string;
  /** HOST:PORT for the Prometheus endpoint (/metrics). */
  metrics?: string;
  /** LOCALIO (program 400122) for co-located clients; default on. */
  localio?: boolean;
  /** LOCALIO's registry directory (default: TSNFS_LOCALIO_REGISTRY, /run/tsnfs/localio as root, else under XDG_RUNTIME_DIR). */
  localioRegistry?: string;
  logger?: Logger;
  /** Duplicate request cache sizing; false turns it off. */
  drc?: DrcOptions | false;
  /**
   * Tune V8's heap growth for serving (default true; see gc.ts). It sets a
   * process-wide V8 flag: an embedder that manages its own GC settings
   * passes false.
   */
  tuneGc?: boolean;
}

export interface RunningServer {
  readonly version: string;
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** 0 when the portmapper is off (or another one on this host took our registrations). */
  readonly portmapPort: number;
  readonly rpc: RpcServer;
  readonly state: ServerState;
  readonly exports: readonly ServedExport[];
  readonly exportSet: ExportSet;
  readonly stats: ServerStats;
  readonly drc: DuplicateRequestCache | undefined;
  readonly mountd: Mountd;
  /** LOCALIO's server side, unless `localio: false`. */
  readonly localio: LocalioServer | undefined;
  /**
   * Stop exporting a path: its handles go stale, MNT refuses it, and the
   * LOCALIO grants of it are revoked (resolves once clients closed them).
   * False when the path is not exported.
   */
  unexport(path: string): Promise<boolean>;
  /** The metrics endpoint's URL, when `metrics` was given. */
  readonly metricsUrl: string | undefined;
  /** Lines telling a user how to reach the server. */
  describe(): string[];
  close(): Promise<void>;
}

export { defaultPorts };

interface Plan {
  rules: Export[];
  /** Export path -> backend given by the embedder. */
  given: Map<string, Backend>;
  /** Whether directories of this host are exported (then state is kept on disk). */
  local: boolean;
}

function planExports(opts: ServeOptions): Plan {
  if (opts.exports && opts.exportsFile) throw new Error('give either `exports` or `exportsFile`, not both');
  const given = new Map<string, Backend>();
  for (const [p, b] of Object.entries(opts.backends ?? {})) {
    if (!path.isAbsolute(p)) throw new Error(`backends: export path "${p}" is not absolute`);
    given.set(normalizeExportPath(p), b);
  }
  let rules: Export[];
  if (opts.exports || opts.exportsFile) {
    rules = opts.exports ? [...opts.exports] : parseExports(fs.readFileSync(opts.exportsFile!, 'utf8'), opts.exportsFile);
    if (opts.backend) {
      const target = opts.dir !== undefined ? path.resolve(opts.dir) : rules.length === 1 ? rules[0]!.path : undefined;
      if (target === undefined) throw new Error('`backend` needs `dir` to name its export when several paths are exported; use `backends`');
      given.set(target, opts.backend);
    }
    const unused = [...given.keys()].filter((p) => !rules.some((r) => r.path === p));
    if (unused.length > 0) throw new Error(`backends given for paths the exports do not list: ${unused.join(', ')}`);
  } else {
    // No rules written: what is named is exported as `tsnfs serve DIR` exports a directory.
    rules = [];
    if (opts.dir !== undefined || opts.backend) {
      const single = exportsForDir(opts.dir ?? '/')[0]!;
      rules.push(single);
      if (opts.backend) given.set(single.path, opts.backend);
    }
    for (const p of given.keys()) if (!rules.some((r) => r.path === p)) rules.push(exportsForDir(p)[0]!);
  }
  return { rules, given, local: rules.some((r) => !given.has(r.path)) };
}

/** State for servers that export nothing on disk: nothing outlives the process. */
function memoryState(): ServerState {
  const startTime = Date.now();
  const ids = new Map<string, number>();
  const used = new Set<number>();
  return {
    dir: '',
    secret: crypto.randomBytes(SECRET_BYTES),
    bootCount: 1,
    startTime,
    writeVerifier: makeWriteVerifier(crypto.randomInt(1, 0xffff_ffff), startTime),
    exportId(p: string): number {
      const key = normalizeExportPath(p);
      let id = ids.get(key);
      if (id === undefined) {
        id = crypto.createHash('sha256').update(key).digest().readUInt32BE(0);
        while (id === 0 || used.has(id)) id = (id + 1) >>> 0;
        ids.set(key, id);
        used.add(id);
      }
      return id;
    },
  };
}

export async function startServer(opts: ServeOptions = {}): Promise<RunningServer> {
  const log = opts.logger ?? silentLogger;
  if (opts.tuneGc !== false) tuneGcForServing();
  const host = opts.host ?? '127.0.0.1';
  const defaults = defaultPorts();
  const plan = planExports(opts);

  // `tsnfs serve DIR` makes DIR when it is missing.
  if (opts.dir !== undefined && !opts.backend && !opts.exports && !opts.exportsFile) fs.mkdirSync(path.resolve(opts.dir), { recursive: true });

  const state = opts.stateDir !== undefined ? openState(opts.stateDir) : plan.local ? openState(defaultStateDir()) : memoryState();
  const exportSet = new ExportSet(state.secret);
  const owned: Backend[] = [];
  const closers: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c().catch((err: unknown) => log.warn({ err }, 'error while closing'));
  };

  try {
    for (const rules of plan.rules) {
      for (const c of rules.clients) {
        if (!c.canMatch) log.warn({ export: rules.path, client: c.client, line: c.line }, 'client spec needs name services and never matches here');
      }
      const id = state.exportId(rules.path);
      let backend = plan.given.get(rules.path);
      const isOwned = !backend;
      if (!backend) {
        const local = new LocalBackend({ root: rules.path, stateDir: state.dir ? path.join(state.dir, 'fs', id.toString(16).padStart(8, '0')) : undefined });
        try {
          await local.init();
        } catch (err) {
          // As exportfs: a missing directory is reported and skipped, the rest is served.
          log.error({ err, export: rules.path }, 'cannot export this directory; skipping it');
          await local.close().catch(() => undefined);
          continue;
        }
        backend = local;
        owned.push(local);
        closers.push(() => local.close());
      }
      const rootNode = await backend.root();
      const served = exportSet.add({ id, path: rules.path, rules, backend, rootNode, owned: isOwned });
      log.info({ export: served.path, id, clients: rules.clients.map((c) => `${c.client}(${formatOptions(c.options)})`) }, 'exporting');
    }

    if (plan.rules.length > 0 && exportSet.size === 0) throw new Error('none of the exports can be served (see the errors above)');

    const stats = new ServerStats({ processMetrics: opts.metrics !== undefined });
    closers.push(() => stats.close());
    const drc = opts.drc === false ? undefined : new DuplicateRequestCache(opts.drc ?? {});
    if (drc) stats.trackReplyCache(drc);

    const rpc = new RpcServer({ logger: log, replyCache: drc, onCall: stats.onCall });
    closers.push(() => rpc.close());
    stats.trackConnections(() => rpc.connectionCount);
    const mountd = new Mountd({ exports: exportSet, logger: log });
    for (const pv of mountd.programs()) rpc.register(pv);
    rpc.register(new Nfs3Server({ exports: exportSet, writeVerifier: state.writeVerifier, logger: log, stats }).program());
    // NFSACL (100227) is deliberately not registered: clients get PROG_UNAVAIL and do without ACLs.
    let localio: LocalioServer | undefined;
    if (opts.localio !== false) {
      // On the NFS connection itself; not registered with the portmapper.
      localio = new LocalioServer({ exports: exportSet, writeVerifier: state.writeVerifier, registry: opts.localioRegistry, logger: log, stats });
      rpc.register(localio.program());
      localio.trackMetrics(stats.registry);
      const lio = localio;
      closers.push(() => lio.close());
    }

    const nfsPort = await rpc.listen(opts.nfsPort ?? defaults.nfs, host);
    // MOUNT shares the NFS listener unless given a port of its own.
    const mountPort = opts.mountPort === undefined || opts.mountPort === opts.nfsPort ? nfsPort : await rpc.listen(opts.mountPort, host);

    const registry = new PortmapRegistry();
    const pm = new RpcServer({ logger: log });
    closers.push(() => pm.close());
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
    for (const { prog, vers } of rpc.registered()) if (prog !== LOCALIO_PROGRAM) programs.push({ prog, vers, port: prog === MOUNT_PROGRAM ? mountPort : nfsPort });
    for (const p of programs) registry.set({ prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: p.port, owner: 'tsnfs' });
    for (const c of external) {
      const set = PMAP_VERS_TABLE.procedures[1];
      for (const p of programs) await c.call(set.proc, (w) => set.encodeArgs(w, { prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: p.port }), set.decodeRes);
    }
    closers.push(async () => {
      for (const c of external) {
        const unset = PMAP_VERS_TABLE.procedures[2];
        for (const p of programs) await c.call(unset.proc, (w) => unset.encodeArgs(w, { prog: p.prog, vers: p.vers, prot: IPPROTO_TCP, port: 0 }), unset.decodeRes).catch(() => false);
        c.close();
      }
    });

    let metrics: MetricsServer | undefined;
    if (opts.metrics !== undefined) metrics = await stats.startMetricsServer(opts.metrics);

    const exports = exportSet.list();
    log.info({ host, nfsPort, mountPort, portmapPort, exports: exports.length, stateDir: state.dir || undefined, metrics: metrics?.url, localioRegistry: localio?.registry }, 'tsnfs serving');
    let closing: Promise<void> | undefined;
    return {
      version,
      host,
      nfsPort,
      mountPort,
      portmapPort,
      rpc,
      state,
      exports,
      exportSet,
      stats,
      drc,
      mountd,
      localio,
      async unexport(p: string): Promise<boolean> {
        const found = exportSet.forPath(p);
        if (!found || found.rest.length > 0) return false;
        exportSet.remove(found.exp.id);
        log.info({ export: found.exp.path }, 'unexported');
        await localio?.revokeExport(found.exp.id);
        return true;
      },
      metricsUrl: metrics?.url,
      describe: () => describe(host, nfsPort, mountPort, exports, metrics?.url),
      close() {
        closing ??= cleanup();
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The address clients use for a listen address (the wildcard ones mean loopback here). */
function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function describe(host: string, nfsPort: number, mountPort: number, exports: readonly ServedExport[], metricsUrl: string | undefined): string[] {
  const h = clientHost(host);
  const bracketed = h.includes(':') ? `[${h}]` : h;
  const lines = [`NFS         ${host}:${nfsPort}`, `MOUNT       ${host}:${mountPort}`];
  if (metricsUrl) lines.push(`metrics     ${metricsUrl}`);
  if (exports.length === 0) lines.push('no exports');
  for (const e of exports) {
    const rules = e.rules.clients.map((c) => `${c.client}(${formatOptions(c.options)})`).join(' ');
    lines.push(`export      ${e.path}  ${rules}`);
    lines.push(`  libnfs:   nfs://${bracketed}${e.path}?version=3&nfsport=${nfsPort}&mountport=${mountPort}`);
    lines.push(`  Linux:    mount -t nfs -o vers=3,proto=tcp,port=${nfsPort},mountport=${mountPort},mountproto=tcp,nolock ${bracketed}:${e.path} /mnt`);
  }
  return lines;
}
