import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { RpcServer, type ProcedureDef, type CallRecord, AcceptStat, AuthStat, AuthFlavor, RpcAcceptError } from '../../src/rpc/index.js';
import { XdrWriter } from '../../src/xdr/index.js';
import { callRecord, rawConnect, parseReply, authSysBody } from '../helpers/raw-rpc.js';

const PROG = 0x2000_0101;
let server: RpcServer;
let port: number;
let running = 0;
let maxRunning = 0;
let lastCred: unknown;
const records: CallRecord[] = [];

function procs(): Map<number, ProcedureDef> {
  return new Map<number, ProcedureDef>([
    [0, { name: 'NULL', handler: () => undefined }],
    [1, { name: 'ECHO', handler: (r) => { const d = r.opaque(1 << 20); return (w) => w.opaque(d); } }],
    [
      2,
      {
        name: 'SLEEP_ECHO',
        handler: async (r) => {
          const ms = r.uint();
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(ms);
          running--;
          return (w) => w.uint(ms);
        },
      },
    ],
    [3, { name: 'FAIL', handler: () => { throw new Error('boom'); } }],
    [6, { name: 'BAD_RESULTS', handler: () => (w) => { w.uint(-1); } }],
    [4, { name: 'REFUSE', handler: () => { throw new RpcAcceptError(AcceptStat.PROC_UNAVAIL); } }],
    [5, { name: 'WHOAMI', handler: (_r, ctx) => { lastCred = ctx.authSys; return (w) => w.uint(ctx.authSys?.uid ?? 0xffffffff); } }],
  ]);
}

before(async () => {
  server = new RpcServer({ maxInflight: 4, maxRecord: 64 * 1024, onCall: (r) => records.push(r) });
  server.register({ prog: PROG, vers: 2, procedures: procs() });
  server.register({ prog: PROG, vers: 4, procedures: procs() });
  port = await server.listen(0);
});
after(() => server.close());

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

test('NULL call gets SUCCESS with the same xid', async () => {
  const c = await rawConnect(port);
  c.socket.write(callRecord({ xid: 77, prog: PROG, vers: 2, proc: 0 }));
  const { head, body } = parseReply(await c.next());
  assert.deepEqual(head, { xid: 77, kind: 'accepted', stat: AcceptStat.SUCCESS });
  assert.equal(body.remaining, 0);
  c.socket.destroy();
});

test('every accept_stat is produced where RFC 5531 says', async () => {
  const c = await rawConnect(port);
  const cases: [Parameters<typeof callRecord>[0], unknown][] = [
    [{ xid: 1, prog: 0x3000_0000, vers: 1, proc: 0 }, { xid: 1, kind: 'accepted', stat: AcceptStat.PROG_UNAVAIL }],
    [{ xid: 2, prog: PROG, vers: 3, proc: 0 }, { xid: 2, kind: 'accepted', stat: AcceptStat.PROG_MISMATCH, mismatch: { low: 2, high: 4 } }],
    [{ xid: 3, prog: PROG, vers: 2, proc: 99 }, { xid: 3, kind: 'accepted', stat: AcceptStat.PROC_UNAVAIL }],
    [{ xid: 4, prog: PROG, vers: 2, proc: 1, args: u32(100) }, { xid: 4, kind: 'accepted', stat: AcceptStat.GARBAGE_ARGS }],
    [{ xid: 5, prog: PROG, vers: 2, proc: 3 }, { xid: 5, kind: 'accepted', stat: AcceptStat.SYSTEM_ERR }],
    [{ xid: 6, prog: PROG, vers: 2, proc: 4 }, { xid: 6, kind: 'accepted', stat: AcceptStat.PROC_UNAVAIL }],
    [{ xid: 9, prog: PROG, vers: 2, proc: 6 }, { xid: 9, kind: 'accepted', stat: AcceptStat.SYSTEM_ERR }],
    [{ xid: 7, rpcvers: 3, prog: PROG, vers: 2, proc: 0 }, { xid: 7, kind: 'rpc_mismatch', low: 2, high: 2 }],
    [{ xid: 8, prog: PROG, vers: 2, proc: 0, credFlavor: AuthFlavor.DH, credBody: Buffer.alloc(8) }, { xid: 8, kind: 'auth_error', stat: AuthStat.AUTH_REJECTEDCRED }],
  ];
  for (const [call] of cases) c.socket.write(callRecord(call));
  const got = new Map<number, unknown>();
  for (let i = 0; i < cases.length; i++) {
    const { head } = parseReply(await c.next());
    got.set(head.xid, head);
  }
  for (const [call, want] of cases) assert.deepEqual(got.get(call.xid), want, `xid ${call.xid}`);
  // Calls refused before dispatch are counted under their own numbers (stats, metrics).
  assert.ok(records.some((r) => r.prog === 0x3000_0000 && r.status === AcceptStat.PROG_UNAVAIL));
  assert.ok(records.some((r) => r.prog === PROG && r.proc === 99 && r.status === AcceptStat.PROC_UNAVAIL));
  c.socket.destroy();
});

test('AUTH_SYS credentials are decoded and malformed ones get AUTH_BADCRED', async () => {
  const c = await rawConnect(port);
  c.socket.write(callRecord({ xid: 10, prog: PROG, vers: 2, proc: 5, credFlavor: AuthFlavor.SYS, credBody: authSysBody({ uid: 1234, gid: 55, gids: [1, 2, 3], machine: 'box' }) }));
  const ok = parseReply(await c.next());
  assert.equal(ok.head.kind, 'accepted');
  assert.equal(ok.body.uint(), 1234);
  assert.deepEqual(lastCred, { stamp: 1, machineName: 'box', uid: 1234, gid: 55, gids: [1, 2, 3] });

  const good = authSysBody({ uid: 1 });
  const lyingLength = Buffer.from(good);
  lyingLength.writeUInt32BE(200, 4); // machine name length points past the body
  const bad: Buffer[] = [
    lyingLength,
    good.subarray(0, good.length - 4), // truncated
    authSysBody({ machine: 'x'.repeat(256) }), // name over 255 bytes
    authSysBody({ gids: Array.from({ length: 17 }, (_, i) => i) }), // 17 aux gids
    Buffer.concat([good, Buffer.alloc(4)]), // trailing bytes
  ];
  let xid = 20;
  for (const body of bad) c.socket.write(callRecord({ xid: xid++, prog: PROG, vers: 2, proc: 5, credFlavor: AuthFlavor.SYS, credBody: body }));
  for (let i = 0; i < bad.length; i++) {
    const { head } = parseReply(await c.next());
    assert.equal(head.kind, 'auth_error', `case ${head.xid}`);
    if (head.kind === 'auth_error') assert.equal(head.stat, AuthStat.AUTH_BADCRED);
  }
  // A credential body over 400 bytes is refused too.
  c.socket.write(callRecord({ xid: 40, prog: PROG, vers: 2, proc: 0, credFlavor: AuthFlavor.SYS, credBody: Buffer.alloc(404) }));
  const { head } = parseReply(await c.next());
  assert.deepEqual(head, { xid: 40, kind: 'auth_error', stat: AuthStat.AUTH_BADCRED });
  c.socket.destroy();
});

test('calls run concurrently and are answered out of order, by xid', async () => {
  const c = await rawConnect(port);
  const arg = (ms: number): Buffer => new XdrWriter().uint(ms).toBuffer();
  c.socket.write(Buffer.concat([
    callRecord({ xid: 100, prog: PROG, vers: 2, proc: 2, args: arg(150) }),
    callRecord({ xid: 101, prog: PROG, vers: 2, proc: 2, args: arg(1) }),
  ]));
  const first = parseReply(await c.next());
  const second = parseReply(await c.next());
  assert.equal(first.head.xid, 101);
  assert.equal(second.head.xid, 100);
  c.socket.destroy();
});

test('past the in-flight limit the server stops reading instead of running more', async () => {
  maxRunning = 0;
  const c = await rawConnect(port);
  const calls: Buffer[] = [];
  for (let i = 0; i < 40; i++) calls.push(callRecord({ xid: 1000 + i, prog: PROG, vers: 2, proc: 2, args: new XdrWriter().uint(5).toBuffer() }));
  c.socket.write(Buffer.concat(calls));
  const seen = new Set<number>();
  for (let i = 0; i < 40; i++) seen.add(parseReply(await c.next()).head.xid);
  assert.equal(seen.size, 40);
  assert.equal(maxRunning, 4);
  c.socket.destroy();
});

test('a fragment header claiming gigabytes closes only that connection', async () => {
  const bystander = await rawConnect(port);
  const bad = await rawConnect(port);
  bad.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xf0]));
  await bad.closed;
  bystander.socket.write(callRecord({ xid: 9, prog: PROG, vers: 2, proc: 0 }));
  assert.equal(parseReply(await bystander.next()).head.xid, 9);
  bystander.socket.destroy();
});

test('a record over the maximum closes the connection; the server keeps serving', async () => {
  const c = await rawConnect(port);
  const big = callRecord({ xid: 5, prog: PROG, vers: 2, proc: 1, args: Buffer.alloc(80 * 1024) });
  c.socket.write(big);
  await c.closed;
  const d = await rawConnect(port);
  d.socket.write(callRecord({ xid: 6, prog: PROG, vers: 2, proc: 0 }));
  assert.equal(parseReply(await d.next()).head.xid, 6);
  d.socket.destroy();
});

test('zero-length and truncated records are dropped without harm', async () => {
  const c = await rawConnect(port);
  // An empty record, a 3-byte record, a header cut short: none can be answered.
  c.socket.write(Buffer.from([0x80, 0, 0, 0, 0x80, 0, 0, 3, 1, 2, 3]));
  c.socket.write(callRecord({ xid: 33, prog: PROG, vers: 2, proc: 0 }).subarray(0, 20));
  c.socket.end();
  await c.closed;
  const d = await rawConnect(port);
  d.socket.write(callRecord({ xid: 34, prog: PROG, vers: 2, proc: 0 }));
  assert.equal(parseReply(await d.next()).head.xid, 34);
  d.socket.destroy();
});

test('property: random bytes and mutated calls never crash the server', async () => {
  const valid = callRecord({ xid: 1, prog: PROG, vers: 2, proc: 5, credFlavor: AuthFlavor.SYS, credBody: authSysBody({ uid: 5, gids: [1] }), args: Buffer.alloc(0) });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((muts) => {
          const b = Buffer.from(valid);
          for (const [i, v] of muts) b[i] = v;
          return b;
        }),
      ),
      async (bytes) => {
        const c = await rawConnect(port);
        c.socket.write(bytes);
        c.socket.end();
        await c.closed;
      },
    ),
    { numRuns: 150 },
  );
  const d = await rawConnect(port);
  d.socket.write(callRecord({ xid: 99, prog: PROG, vers: 2, proc: 0 }));
  assert.equal(parseReply(await d.next()).head.xid, 99);
  d.socket.destroy();
  assert.ok(process.memoryUsage().rss < 1024 * 1024 * 1024);
});
