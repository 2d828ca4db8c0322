// RpcServer's buffer lifetimes: afterReply runs once the socket is done with
// a reply (never before: what it frees may be reused at once), and a record
// whose handler calls recycleArgs is reused for a later record only then.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { RpcClient, RpcServer, type CallContext, type ProcedureDef } from '../../src/rpc/index.js';

const PROG = 0x2000_0202;
let server: RpcServer;
let port: number;
let client: RpcClient;
const argMemory: { recycled: ArrayBufferLike[]; kept: ArrayBufferLike[] } = { recycled: [], kept: [] };
const events: string[] = [];

function digestHandler(recycle: boolean): ProcedureDef['handler'] {
  return async (r, ctx: CallContext) => {
    // Recycling says the record may be reused once the reply is written: the
    // handler may still read its arguments until then, here after others ran.
    if (recycle) ctx.recycleArgs?.();
    const data = r.opaque(2 << 20);
    await new Promise((resolve) => setImmediate(resolve));
    const sum = crypto.createHash('sha256').update(data).digest();
    (recycle ? argMemory.recycled : argMemory.kept).push(ctx.args.buffer);
    return (w) => w.opaqueFixed(sum, 32);
  };
}

before(async () => {
  server = new RpcServer({ maxRecord: 2 << 20 });
  server.register({
    prog: PROG,
    vers: 1,
    procedures: new Map<number, ProcedureDef>([
      [1, { name: 'DIGEST_RECYCLE', handler: digestHandler(true) }],
      [2, { name: 'DIGEST_KEEP', handler: digestHandler(false) }],
      [
        3,
        {
          // A large reply from a buffer that is "given back" (overwritten) in afterReply.
          name: 'BIG_REPLY',
          handler: (r, ctx) => {
            const n = r.uint();
            const buf = Buffer.alloc(n, 0x5a);
            ctx.afterReply?.(() => {
              events.push('released');
              buf.fill(0xee);
            });
            return (w) => w.opaque(buf);
          },
        },
      ],
      [
        5,
        {
          // n bytes of one value: which call a reply (or a view of it) belongs to shows in its bytes.
          name: 'FILLED',
          handler: (r) => {
            const n = r.uint();
            const value = r.uint();
            return (w) => w.opaque(Buffer.alloc(n, value));
          },
        },
      ],
      [
        4,
        {
          name: 'FAIL_AFTER_REGISTERING',
          handler: (_r, ctx) => {
            ctx.afterReply?.(() => events.push('released after failure'));
            throw new Error('boom');
          },
        },
      ],
    ]),
  });
  port = await server.listen(0);
  client = new RpcClient({ host: '127.0.0.1', port, prog: PROG, vers: 1, maxRecord: 64 << 20 });
});

after(async () => {
  client.close();
  await server.close();
});

function digest(proc: number, data: Buffer): Promise<Buffer> {
  return client.call(proc, (w) => w.opaque(data), (r) => Buffer.from(r.opaqueFixed(32)));
}

test('a reply is written whole before afterReply runs', async () => {
  events.length = 0;
  for (const n of [1 << 20, 8 << 20]) {
    const got = await client.call(3, (w) => w.uint(n), (r) => Buffer.from(r.opaque(64 << 20)));
    assert.equal(got.length, n);
    assert.ok(got.every((b) => b === 0x5a), `a ${n}-byte reply arrived intact`);
  }
  assert.deepEqual(events, ['released', 'released']);
});

test('afterReply callbacks run when the handler fails too', async () => {
  events.length = 0;
  await assert.rejects(client.call(4, undefined, () => undefined));
  assert.deepEqual(events, ['released after failure']);
});

test('large records are reused once their handler recycles them, and never while in use', async () => {
  const payloads = Array.from({ length: 24 }, (_, i) => crypto.randomBytes(300 * 1024 + i * 1000));
  // Many at once: records are assembled while others are being handled.
  const sums = await Promise.all(payloads.map((p) => digest(1, p)));
  for (let i = 0; i < payloads.length; i++) {
    assert.ok(sums[i]!.equals(crypto.createHash('sha256').update(payloads[i]!).digest()), `payload ${i} arrived intact`);
  }
  // One after another: each record lands in the memory the previous one gave back.
  argMemory.recycled.length = 0;
  for (const p of payloads.slice(0, 4)) await digest(1, p);
  assert.equal(new Set(argMemory.recycled).size, 1, 'the same slab every time');
});

test('records whose handler does not recycle them are never reused', async () => {
  argMemory.kept.length = 0;
  for (let i = 0; i < 4; i++) await digest(2, crypto.randomBytes(200 * 1024));
  assert.equal(new Set(argMemory.kept).size, 4);
  for (const b of argMemory.kept) assert.ok(!argMemory.recycled.includes(b));
});

/** A FILLED reply as a view into the client's record, with the release the client offered. */
async function filled(value: number, n = 1 << 20): Promise<{ data: Buffer; release: (() => void) | undefined }> {
  let release: (() => void) | undefined;
  const data = await client.call(5, (w) => (w.uint(n), w.uint(value)), (r, rel) => {
    release = rel;
    return r.opaque(64 << 20);
  });
  return { data, release };
}

test('client: a large reply record is reused only after it was released', async () => {
  const a = await filled(1);
  assert.ok(a.release, 'a large reply comes in a pooled record');
  const b = await filled(2);
  // a was not released: b cannot have landed on it.
  assert.notEqual(b.data.buffer, a.data.buffer);
  assert.ok(a.data.every((x) => x === 1), 'a view of an unreleased record stays intact');
  a.release!();
  const c = await filled(3);
  assert.equal(c.data.buffer, a.data.buffer, 'the released record is reused');
  assert.ok(b.data.every((x) => x === 2), 'an unreleased record is untouched by the reuse');
  assert.ok(c.data.every((x) => x === 3));
  // A caller that does not ask for the release never has its reply reused.
  const kept = await client.call(5, (w) => (w.uint(1 << 20), w.uint(4)), (r) => r.opaque(64 << 20));
  c.release!();
  b.release!();
  await filled(5);
  await filled(6);
  assert.ok(kept.every((x) => x === 4));
  // Small replies are not pooled.
  assert.equal((await filled(7, 100)).release, undefined);
});
