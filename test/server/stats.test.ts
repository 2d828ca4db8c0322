import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Histogram, Registry } from 'prom-client';
import { ServerStats, parseHostPort } from '../../src/server/stats.js';
import { DuplicateRequestCache } from '../../src/server/drc.js';

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('snapshot: counts and percentiles per procedure', () => {
  const stats = new ServerStats({ processMetrics: false });
  for (let i = 1; i <= 100; i++) stats.record(100003, 3, 'GETATTR', 0, BigInt(i * 1000)); // 1..100 µs
  stats.record(100003, 3, 'WRITE', 0, 5_000_000);
  stats.record(100003, 3, 'WRITE', 5, 2_000_000_000);
  stats.onCall({ prog: 100005, vers: 3, proc: 1, name: 'MNT', status: 0, durationNs: 250_000n });
  stats.onCall({ prog: 0, vers: 0, proc: 0, name: '', status: -1, durationNs: 1_000n });
  const snap = stats.snapshot();
  assert.deepEqual(snap.map((s) => `${s.program}${s.version}.${s.procedure}=${s.count}/${s.errors}`), ['mount3.MNT=1/0', 'nfs3.GETATTR=100/0', 'nfs3.WRITE=2/1', 'unknown0.unknown=1/1']);
  const ga = snap.find((s) => s.procedure === 'GETATTR')!;
  assert.ok(Math.abs(ga.p50Us - 50) <= 1, `p50 ${ga.p50Us}`);
  assert.ok(Math.abs(ga.p99Us - 99) <= 1, `p99 ${ga.p99Us}`);
  assert.equal(ga.maxUs, 100);
  assert.ok(Math.abs(ga.meanUs - 50.5) < 1);
  const wr = snap.find((s) => s.procedure === 'WRITE')!;
  assert.equal(wr.maxUs, 2_000_000);
});

test('/metrics over HTTP on an ephemeral port', async () => {
  const stats = new ServerStats();
  const drc = new DuplicateRequestCache();
  stats.trackReplyCache(drc);
  drc.lookup({ address: '192.0.2.1', xid: 1, prog: 100003, vers: 3, proc: 8, args: Buffer.alloc(0) });
  let conns = 3;
  stats.trackConnections(() => conns);
  stats.record(100003, 3, 'READ', 0, 120_000n);
  stats.record(100003, 3, 'READ', 0, 80_000n);
  stats.record(100003, 3, 'LOOKUP', 'noent', 30_000);
  stats.addBytesRead(65536);
  stats.addBytesWritten(4096, 'localio');
  const srv = await stats.startMetricsServer('127.0.0.1:0');
  try {
    assert.ok(srv.port > 0);
    assert.equal(srv.url, `http://127.0.0.1:${srv.port}/metrics`);
    const res = await get(srv.url);
    assert.equal(res.status, 200);
    assert.match(res.type, /^text\/plain/);
    const lines = res.body.split('\n');
    const has = (line: string): void => assert.ok(lines.includes(line), `missing: ${line}`);
    has('tsnfs_rpc_requests_total{program="nfs",version="3",procedure="READ",status="success"} 2');
    has('tsnfs_rpc_requests_total{program="nfs",version="3",procedure="LOOKUP",status="noent"} 1');
    has('tsnfs_rpc_duration_seconds_count{program="nfs",version="3",procedure="READ"} 2');
    has('tsnfs_rpc_duration_seconds_bucket{le="0.0001",program="nfs",version="3",procedure="READ"} 1');
    has('tsnfs_read_bytes_total{transport="rpc"} 65536');
    has('tsnfs_written_bytes_total{transport="localio"} 4096');
    has('tsnfs_connections 3');
    has('tsnfs_drc_lookups_total{result="miss"} 1');
    has('tsnfs_drc_entries 1');
    assert.match(res.body, /^process_cpu_user_seconds_total /m);
    conns = 1;
    assert.ok((await get(srv.url)).body.includes('\ntsnfs_connections 1\n'));
    assert.equal((await get(`http://127.0.0.1:${srv.port}/other`)).status, 404);
    assert.equal((await get(srv.url, 'POST')).status, 405);
    const head = await get(srv.url, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  } finally {
    await stats.close();
  }
  await assert.rejects(get(srv.url));
});

test('the duration histogram exports what prom-client\'s Histogram would, as text and as JSON', async () => {
  const stats = new ServerStats({ processMetrics: false });
  const reference = new Registry();
  const ref = new Histogram({
    name: 'tsnfs_rpc_duration_seconds',
    help: 'Time from receiving a call to sending its reply',
    labelNames: ['program', 'version', 'procedure'],
    buckets: [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [reference],
  });
  // Values on bucket bounds, between them, and past the last one.
  const calls: [string, number][] = [['READ', 25_000], ['READ', 25_001], ['READ', 1_000_000], ['READ', 12e9], ['GETATTR', 3_000], ['GETATTR', 499_999], ['NULL', 2_500_000_000]];
  for (const [proc, ns] of calls) {
    stats.record(100003, 3, proc, 0, ns);
    ref.labels('nfs', '3', proc).observe(ns / 1e9);
  }
  stats.record(100005, 3, 'NULL', 0, 40_000n);
  ref.labels('mount', '3', 'NULL').observe(40e-6);
  const lines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('tsnfs_rpc_duration_seconds')).sort();
  const ours = lines(await stats.registry.metrics());
  assert.equal(ours.length, 4 * 21);
  assert.deepEqual(ours, lines(await reference.metrics()));
  const json = async (r: Registry): Promise<unknown> => (await r.getMetricsAsJSON()).find((m) => m.name === 'tsnfs_rpc_duration_seconds');
  assert.deepEqual(await json(stats.registry), await json(reference));
});

test('connection counting without a source', async () => {
  const stats = new ServerStats({ processMetrics: false });
  stats.connectionOpened();
  stats.connectionOpened();
  stats.connectionClosed();
  const text = await stats.registry.metrics();
  assert.match(text, /^tsnfs_connections 1$/m);
  assert.match(text, /^tsnfs_connections_accepted_total 2$/m);
});

test('HOST:PORT forms', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseHostPort('[::1]:9100'), { host: '::1', port: 9100 });
  assert.deepEqual(parseHostPort(':9100'), { host: undefined, port: 9100 });
  assert.deepEqual(parseHostPort('9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseHostPort('metrics.local:0'), { host: 'metrics.local', port: 0 });
  for (const bad of ['::1:9100', 'host', 'host:', 'host:99999', 'host:x']) assert.throws(() => parseHostPort(bad), Error, bad);
});
