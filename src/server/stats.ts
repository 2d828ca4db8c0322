// Server statistics: per-procedure counts and latency histograms (HDR, in
// microseconds) for `snapshot()` and benchmarks, and the same numbers as
// Prometheus metrics for `--metrics HOST:PORT`.
//
// Recording runs once per call, so it only bumps plain numbers of the
// procedure's entry (found by its name, no key string built): prom-client's
// labelled inc() and observe() hash their labels every time, together more
// than half a microsecond. The Prometheus metrics are filled from the
// entries when scraped.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';
import hdr from 'hdr-histogram-js';
import type { CallRecord } from '../rpc/index.js';
import type { DrcCounters } from './drc.js';

export const PROGRAM_NAMES: Readonly<Record<number, string>> = Object.freeze({
  100000: 'portmap',
  100003: 'nfs',
  100005: 'mount',
  400122: 'localio',
});

/** accept_stat names; -1 is a call denied (RPC_MISMATCH, AUTH_ERROR). */
const STATUS_NAMES: Readonly<Record<number, string>> = {
  [-1]: 'denied',
  0: 'success',
  1: 'prog_unavail',
  2: 'prog_mismatch',
  3: 'proc_unavail',
  4: 'garbage_args',
  5: 'system_err',
};

/** Latency buckets in seconds: 25 µs (a cached GETATTR) up to 10 s (a stuck COMMIT). */
const DURATION_BUCKETS = [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Highest latency the HDR histograms resolve; longer calls count as this (max stays exact). */
const HDR_HIGHEST_US = 600e6;

export interface ProcStats {
  program: string;
  version: number;
  procedure: string;
  count: number;
  /** Calls whose status was not success. */
  errors: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
}

export interface StatsOptions {
  /** Also export Node's process metrics (CPU, memory, event loop). Default true. */
  processMetrics?: boolean;
  /** Extra program number -> name entries for labels. */
  programNames?: Record<number, string>;
}

export type Transport = 'rpc' | 'localio';

interface ProcEntry {
  prog: number;
  program: string;
  version: number;
  procedure: string;
  hist: hdr.Histogram;
  /** Calls answered, by status name. */
  byStatus: Map<string, number>;
  errors: number;
  maxUs: number;
  /** Calls per DURATION_BUCKETS bucket (not cumulative; past the last: count - sum of these). */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/**
 * tsnfs_rpc_duration_seconds, read from the procedure entries when scraped
 * rather than observed call by call (see the top of this file). The values
 * are the ones prom-client's Histogram exports: cumulative buckets, +Inf,
 * _sum and _count, per label set.
 */
class DurationHistogram extends Histogram<string> {
  static readonly NAME = 'tsnfs_rpc_duration_seconds';
  static readonly HELP = 'Time from receiving a call to sending its reply';

  constructor(registers: Registry[], private readonly entries: () => Iterable<ProcEntry>) {
    super({ name: DurationHistogram.NAME, help: DurationHistogram.HELP, labelNames: ['program', 'version', 'procedure'], buckets: DURATION_BUCKETS, registers });
  }

  // Registry.metrics() reads getForPromString; get() splays its shared labels.
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: Aggregator; values: ExportedValue[] }> {
    const name = DurationHistogram.NAME;
    const values: ExportedValue[] = [];
    for (const e of this.entries()) {
      const sharedLabels = { program: e.program, version: String(e.version), procedure: e.procedure };
      let acc = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        acc += e.buckets[i]!;
        values.push({ labels: { le: DURATION_BUCKETS[i]! }, sharedLabels, value: acc, metricName: `${name}_bucket`, exemplar: null });
      }
      values.push(
        { labels: { le: '+Inf' }, sharedLabels, value: e.count, metricName: `${name}_bucket`, exemplar: null },
        { labels: {}, sharedLabels, value: e.sumSeconds, metricName: `${name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels, value: e.count, metricName: `${name}_count`, exemplar: undefined },
      );
    }
    return { name, help: DurationHistogram.HELP, type: 'histogram', aggregator: 'sum', values };
  }
}

interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  /** As prom-client gives it: null on buckets, undefined on _sum and _count. */
  exemplar: null | undefined;
}

export class ServerStats {
  readonly registry = new Registry();
  private readonly programNames: Record<number, string>;
  /** Procedure entries by procedure name (a name is shared by a few programs at most). */
  private readonly procs = new Map<string, ProcEntry[]>();
  private readonly bytesRead: Counter<string>;
  private readonly bytesWritten: Counter<string>;
  /** Label children by transport: labels() hashes its arguments on every call. */
  private readonly readBy = new Map<Transport, Counter.Internal>();
  private readonly writtenBy = new Map<Transport, Counter.Internal>();
  private readonly accepted: Counter<string>;
  private connectionSource: (() => number) | undefined;
  private openConnections = 0;
  private readonly servers = new Set<MetricsServer>();

  constructor(opts: StatsOptions = {}) {
    this.programNames = { ...PROGRAM_NAMES, ...opts.programNames };
    const registers = [this.registry];
    const self = this;
    new Counter({
      name: 'tsnfs_rpc_requests_total',
      help: 'RPC calls answered',
      labelNames: ['program', 'version', 'procedure', 'status'],
      registers,
      collect() {
        this.reset();
        for (const e of self.entries()) for (const [status, n] of e.byStatus) this.labels(e.program, String(e.version), e.procedure, status).inc(n);
      },
    });
    new DurationHistogram(registers, () => this.entries());
    this.bytesRead = new Counter({ name: 'tsnfs_read_bytes_total', help: 'File data bytes read by clients', labelNames: ['transport'], registers });
    this.bytesWritten = new Counter({ name: 'tsnfs_written_bytes_total', help: 'File data bytes written by clients', labelNames: ['transport'], registers });
    this.accepted = new Counter({ name: 'tsnfs_connections_accepted_total', help: 'Client connections accepted', registers });
    new Gauge({
      name: 'tsnfs_connections',
      help: 'Client connections open',
      registers,
      collect() {
        this.set(self.connectionSource ? self.connectionSource() : self.openConnections);
      },
    });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** For RpcServerOptions.onCall. */
  readonly onCall = (rec: CallRecord): void => {
    this.record(rec.prog, rec.vers, rec.name, rec.status, rec.durationNs);
  };

  /** `status`: an accept_stat number (-1 denied) or a name of the caller's choosing. */
  record(prog: number, vers: number, procedure: string, status: number | string, duration: bigint | number): void {
    const e = this.entry(prog, vers, procedure || 'unknown');
    const statusName = typeof status === 'number' ? (STATUS_NAMES[status] ?? String(status)) : status;
    e.byStatus.set(statusName, (e.byStatus.get(statusName) ?? 0) + 1);
    if (statusName !== 'success') e.errors++;
    const ns = typeof duration === 'bigint' ? Number(duration) : duration;
    const us = Math.max(1, Math.round(ns / 1000));
    e.hist.recordValue(Math.min(us, HDR_HIGHEST_US));
    if (us > e.maxUs) e.maxUs = us;
    const seconds = ns / 1e9;
    e.count++;
    e.sumSeconds += seconds;
    // prom-client's buckets: a value equal to a bound counts in that bound's bucket.
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]!) {
        e.buckets[i]!++;
        break;
      }
    }
  }

  addBytesRead(n: number, transport: Transport = 'rpc'): void {
    let c = this.readBy.get(transport);
    if (!c) this.readBy.set(transport, (c = this.bytesRead.labels(transport)));
    c.inc(n);
  }

  addBytesWritten(n: number, transport: Transport = 'rpc'): void {
    let c = this.writtenBy.get(transport);
    if (!c) this.writtenBy.set(transport, (c = this.bytesWritten.labels(transport)));
    c.inc(n);
  }

  connectionOpened(): void {
    this.openConnections++;
    this.accepted.inc();
  }

  connectionClosed(): void {
    if (this.openConnections > 0) this.openConnections--;
  }

  /** Read the open connection count from its owner (e.g. () => rpcServer.connectionCount). */
  trackConnections(count: () => number): void {
    this.connectionSource = count;
  }

  /** Export a duplicate request cache's counters. */
  trackReplyCache(cache: { readonly counters: DrcCounters; readonly size: number; readonly bytes: number }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'tsnfs_drc_entries',
      help: 'Duplicate request cache entries',
      registers,
      collect() {
        this.set(cache.size);
      },
    });
    new Gauge({
      name: 'tsnfs_drc_bytes',
      help: 'Duplicate request cache size in bytes',
      registers,
      collect() {
        this.set(cache.bytes);
      },
    });
    new Counter({
      name: 'tsnfs_drc_lookups_total',
      help: 'Duplicate request cache lookups by result',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const c = cache.counters;
        this.labels('hit').inc(c.hits);
        this.labels('miss').inc(c.misses);
        this.labels('in_progress').inc(c.inProgress);
      },
    });
  }

  /** Count, latency percentiles and max per procedure seen so far. */
  snapshot(): ProcStats[] {
    const out: ProcStats[] = [];
    for (const e of this.entries()) {
      const h = e.hist;
      out.push({
        program: e.program,
        version: e.version,
        procedure: e.procedure,
        count: h.totalCount,
        errors: e.errors,
        p50Us: h.getValueAtPercentile(50),
        p99Us: h.getValueAtPercentile(99),
        maxUs: e.maxUs,
        meanUs: h.mean,
      });
    }
    return out.sort((a, b) => a.program.localeCompare(b.program) || a.version - b.version || a.procedure.localeCompare(b.procedure));
  }

  /** Serve this registry on `/metrics`; closed by `close()` as well. */
  async startMetricsServer(hostPort: string): Promise<MetricsServer> {
    const srv = await startMetricsServer(hostPort, this.registry);
    this.servers.add(srv);
    const close = srv.close;
    return {
      ...srv,
      close: async () => {
        this.servers.delete(srv);
        await close();
      },
    };
  }

  async close(): Promise<void> {
    const all = [...this.servers];
    this.servers.clear();
    await Promise.all(all.map((s) => s.close()));
    this.registry.clear();
  }

  private *entries(): Iterable<ProcEntry> {
    for (const list of this.procs.values()) yield* list;
  }

  private entry(prog: number, vers: number, procedure: string): ProcEntry {
    let list = this.procs.get(procedure);
    if (!list) this.procs.set(procedure, (list = []));
    for (const e of list) if (e.prog === prog && e.version === vers) return e;
    const e: ProcEntry = {
      prog,
      program: prog === 0 ? 'unknown' : (this.programNames[prog] ?? String(prog)),
      version: vers,
      procedure,
      hist: hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HDR_HIGHEST_US, numberOfSignificantValueDigits: 3, autoResize: false }),
      byStatus: new Map(),
      errors: 0,
      maxUs: 0,
      buckets: DURATION_BUCKETS.map(() => 0),
      count: 0,
      sumSeconds: 0,
    };
    list.push(e);
    return e;
  }
}

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * `HOST:PORT`, `[V6]:PORT`, `:PORT` (every interface) or `PORT` (loopback
 * only: metrics are not public unless asked).
 */
export function parseHostPort(s: string): { host: string | undefined; port: number } {
  let host: string | undefined;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) [, host, portText] = v6 as unknown as [string, string, string];
  else if (/^\d+$/.test(s)) [host, portText] = ['127.0.0.1', s];
  else {
    const colon = s.lastIndexOf(':');
    if (colon < 0 || s.indexOf(':') !== colon) throw new Error(`expected HOST:PORT (IPv6 as [ADDR]:PORT), got "${s}"`);
    host = s.slice(0, colon) || undefined;
    portText = s.slice(colon + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`bad port in "${s}"`);
  return { host, port };
}

export async function startMetricsServer(hostPort: string, registry: Registry): Promise<MetricsServer> {
  const { host, port } = parseHostPort(hostPort);
  const server = http.createServer((req, res) => serveMetrics(registry, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    host: addr.address,
    port: addr.port,
    url: `http://${shown}:${addr.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function serveMetrics(registry: Registry, req: http.IncomingMessage, res: http.ServerResponse): void {
  const pathname = (req.url ?? '/').split('?')[0];
  if (pathname !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  registry.metrics().then(
    (body) => {
      res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
    },
    (err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${String(err)}\n`);
    },
  );
}
