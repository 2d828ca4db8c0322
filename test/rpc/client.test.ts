import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  RpcServer,
  RpcClient,
  type ProcedureDef,
  RpcProgUnavailError,
  RpcProgMismatchError,
  RpcProcUnavailError,
  RpcGarbageArgsError,
  RpcSystemError,
  RpcTimeoutError,
  RpcProtocolError,
  RpcConnectionError,
  RpcAuthError,
  AuthFlavor,
  recordMark,
} from '../../src/rpc/index.js';
import { XdrWriter } from '../../src/xdr/index.js';

const PROG = 0x2000_0202;
const laterCalls = new Map<number, number[]>();

function program(): Map<number, ProcedureDef> {
  return new Map<number, ProcedureDef>([
    [0, { name: 'NULL', handler: () => undefined }],
    [1, { name: 'ECHO', handler: (r) => { const d = r.opaque(1 << 20); return (w) => w.opaque(d); } }],
    [2, { name: 'SLEEP', handler: async (r) => { const ms = r.uint(); await sleep(ms); return (w) => w.uint(ms); } }],
    [3, { name: 'FAIL', handler: () => { throw new Error('boom'); } }],
    [4, { name: 'UID', handler: (_r, ctx) => (w) => w.uint(ctx.authSys?.uid ?? 0xffff_ffff) }],
    // "Try later" (1) until called `n` times for `key`, then done (0); the xids seen are kept.
    [5, { name: 'LATER', handler: (r, ctx) => {
      const key = r.uint();
      const n = r.uint();
      const seen = laterCalls.get(key) ?? [];
      seen.push(ctx.xid);
      laterCalls.set(key, seen);
      return (w) => w.uint(seen.length < n ? 1 : 0);
    } }],
  ]);
}

async function startServer(port = 0, flavors?: number[]): Promise<{ server: RpcServer; port: number }> {
  const server = new RpcServer();
  server.register({ prog: PROG, vers: 1, procedures: program(), flavors });
  return { server, port: await server.listen(port) };
}

const echo = (data: Buffer) => (w: XdrWriter) => w.opaque(data);

test('many calls in flight on one connection, each gets its own result', async () => {
  const { server, port } = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  const datas = Array.from({ length: 200 }, (_, i) => Buffer.from(`payload-${i}-`.repeat(i % 50)));
  const results = await Promise.all(datas.map((d) => client.call(1, echo(d), (r) => Buffer.from(r.opaque(1 << 20)))));
  results.forEach((r, i) => assert.deepEqual(r, datas[i]));
  assert.equal(client.inflight, 0);
  client.close();
  await server.close();
});

test('calls made in one tick go out in groups of sendGroup, each as soon as it is complete', async () => {
  const { server, port } = await startServer();
  const grouped = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1, sendGroup: 4 });
  const whole = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1, sendGroup: Infinity });
  await Promise.all([grouped.connect(), whole.connect()]);
  const datas = Array.from({ length: 10 }, (_, i) => Buffer.from(`call-${i}`));
  const run = (c: RpcClient, sentAfterFour: number) => {
    const calls = datas.map((d, i) => {
      const p = c.call(1, echo(d), (r) => Buffer.from(r.opaque(1 << 20)));
      // The first group left before this tick ended; a whole-tick client has sent nothing yet.
      if (i === 3) assert.equal(c.sends, sentAfterFour);
      return p;
    });
    return Promise.all(calls);
  };
  assert.deepEqual(await run(grouped, 1), datas);
  assert.equal(grouped.sends, 3, '4 + 4 + the last 2 at the end of the tick');
  assert.deepEqual(await run(whole, 0), datas);
  assert.equal(whole.sends, 1);
  grouped.close();
  whole.close();
  await server.close();
});

test('each RPC failure has its own error class', async () => {
  const { server, port } = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  await assert.rejects(client.call(0, undefined, () => 0, { prog: 0x3111_1111 }), RpcProgUnavailError);
  const mismatch = await client.call(0, undefined, () => 0, { vers: 7 }).catch((e: unknown) => e);
  assert.ok(mismatch instanceof RpcProgMismatchError);
  assert.equal(mismatch.low, 1);
  assert.equal(mismatch.high, 1);
  await assert.rejects(client.call(42, undefined, () => 0), RpcProcUnavailError);
  await assert.rejects(client.call(1, (w) => w.uint(500), () => 0), RpcGarbageArgsError);
  await assert.rejects(client.call(3, undefined, () => 0), RpcSystemError);
  // Results that do not decode are the server's fault, reported as such.
  await assert.rejects(client.call(0, undefined, (r) => r.uint()), RpcProtocolError);
  client.close();
  await server.close();
});

test('AUTH_SYS credentials reach the server; a program that wants AUTH_SYS refuses AUTH_NONE', async () => {
  const { server, port } = await startServer(0, [AuthFlavor.SYS]);
  const sys = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1, cred: { stamp: 1, machineName: 'm', uid: 4321, gid: 5, gids: [6] } });
  assert.equal(await sys.call(4, undefined, (r) => r.uint()), 4321);
  const none = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  await assert.rejects(none.call(4, undefined, (r) => r.uint()), RpcAuthError);
  sys.close();
  none.close();
  await server.close();
});

test('a call times out with RpcTimeoutError and a late reply is ignored', async () => {
  const { server, port } = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  await assert.rejects(client.call(2, (w) => w.uint(300), (r) => r.uint(), { timeoutMs: 50 }), RpcTimeoutError);
  assert.equal(await client.call(2, (w) => w.uint(1), (r) => r.uint()), 1);
  await sleep(300);
  client.close();
  await server.close();
});

test('timeouts: a short call behind a long one still times out on time; calls without one wait', async () => {
  const { server, port } = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1, timeoutMs: 0 });
  const done: string[] = [];
  const long = client.call(2, (w) => w.uint(400), (r) => r.uint(), { timeoutMs: 5_000 });
  void long.then(() => done.push('long'));
  const forever = client.call(2, (w) => w.uint(450), (r) => r.uint());
  const t0 = performance.now();
  await assert.rejects(client.call(2, (w) => w.uint(300), (r) => r.uint(), { timeoutMs: 60 }), RpcTimeoutError);
  const took = performance.now() - t0;
  assert.ok(took >= 55, `the 60 ms call failed after ${took.toFixed(0)} ms`);
  assert.deepEqual(done, [], 'the short call failed before the long one was answered');
  assert.equal(await long, 400);
  assert.equal(await forever, 450);
  client.close();
  await server.close();
});

test('retryLater: a result that asks is sent again with a new xid, after a growing delay, until done or out of time', async () => {
  const { server, port } = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  const later = (res: unknown) => res === 1;
  const t0 = performance.now();
  assert.equal(await client.call(5, (w) => w.uint(1).uint(3), (r) => r.uint(), { retryLater: later }), 0);
  const took = performance.now() - t0;
  const xids = laterCalls.get(1)!;
  assert.equal(xids.length, 3);
  assert.equal(new Set(xids).size, 3, 'each attempt has its own xid');
  assert.ok(took >= 290, `two retries wait 100 + 200 ms, took ${took.toFixed(0)}`);
  assert.equal(client.laterRetries, 2);
  // Out of time: the caller gets the last "try later" result.
  assert.equal(await client.call(5, (w) => w.uint(2).uint(100), (r) => r.uint(), { retryLater: later, retryForMs: 250 }), 1);
  assert.ok(laterCalls.get(2)!.length >= 2 && laterCalls.get(2)!.length <= 3, `${laterCalls.get(2)!.length} attempts in 250 ms`);
  // What the decoder throws is offered to the predicate too.
  const err = new Error('try later');
  const thrown = client.call(5, (w) => w.uint(3).uint(2), (r) => {
    if (r.uint() === 1) throw err;
    return 'done';
  }, { retryLater: (e) => e === err });
  assert.equal(await thrown, 'done');
  assert.equal(laterCalls.get(3)!.length, 2);
  client.close();
  await server.close();
});

test('connecting to a closed port fails at once with RpcConnectionError', async () => {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  probe.close();
  const client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1 });
  await assert.rejects(client.call(0, undefined, () => 0), RpcConnectionError);
  client.close();
});

test('after the server restarts, calls in flight are sent again and complete', async () => {
  const first = await startServer();
  const client = new RpcClient({ host: '127.0.0.1', port: first.port, prog: PROG, vers: 1 });
  await client.call(0, undefined, () => 0);
  const slow = client.call(2, (w) => w.uint(2000), (r) => r.uint());
  await sleep(50);
  await first.server.close(); // drops the connection with the call unanswered
  const second = await startServer(first.port);
  assert.equal(await slow, 2000);
  assert.ok(client.retransmits >= 1);
  client.close();
  await second.server.close();
});

async function rogueServer(reply: (xid: number, s: net.Socket) => void): Promise<{ port: number; close: () => void }> {
  const srv = net.createServer((s) => {
    s.on('data', (d) => reply(d.readUInt32BE(4), s));
    s.on('error', () => undefined);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

test('a malformed reply header gives RpcProtocolError, not a hang', async () => {
  const rogue = await rogueServer((xid, s) => {
    const body = Buffer.alloc(12);
    body.writeUInt32BE(xid, 0);
    body.writeUInt32BE(1, 4); // REPLY
    body.writeUInt32BE(9, 8); // no such reply_stat
    s.write(Buffer.concat([recordMark(body.length), body]));
  });
  const client = new RpcClient({ host: '127.0.0.1', port: rogue.port, prog: PROG, vers: 1, reconnect: false });
  await assert.rejects(client.call(0, undefined, () => 0), RpcProtocolError);
  client.close();
  rogue.close();
});

test('an oversized reply record fails the calls instead of buffering it', async () => {
  const rogue = await rogueServer((_xid, s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff])));
  const client = new RpcClient({ host: '127.0.0.1', port: rogue.port, prog: PROG, vers: 1, maxRecord: 1 << 20 });
  await assert.rejects(client.call(0, undefined, () => 0), RpcProtocolError);
  client.close();
  rogue.close();
});

test('replies with a wrong xid are ignored; the call still times out cleanly', async () => {
  const rogue = await rogueServer((xid, s) => {
    const body = Buffer.alloc(24);
    body.writeUInt32BE((xid + 1) >>> 0, 0);
    body.writeUInt32BE(1, 4);
    s.write(Buffer.concat([recordMark(body.length), body]));
  });
  const client = new RpcClient({ host: '127.0.0.1', port: rogue.port, prog: PROG, vers: 1 });
  await assert.rejects(client.call(0, undefined, () => 0, { timeoutMs: 200 }), RpcTimeoutError);
  client.close();
  rogue.close();
});

test('a server closing mid-record with reconnect off fails the call with RpcConnectionError', async () => {
  const rogue = await rogueServer((_xid, s) => {
    s.write(Buffer.from([0x80, 0, 0, 100, 1, 2, 3]));
    s.destroy();
  });
  const client = new RpcClient({ host: '127.0.0.1', port: rogue.port, prog: PROG, vers: 1, reconnect: false });
  await assert.rejects(client.call(0, undefined, () => 0), RpcConnectionError);
  client.close();
  rogue.close();
});
