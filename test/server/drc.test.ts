import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateRequestCache, type DrcKey } from '../../src/server/drc.js';
import { RpcServer, type ProcedureDef } from '../../src/rpc/index.js';
import { callRecord, rawConnect, parseReply } from '../helpers/raw-rpc.js';

function key(over: Partial<DrcKey> = {}): DrcKey {
  return { address: '192.0.2.1', xid: 42, prog: 100003, vers: 3, proc: 8, args: Buffer.from('create foo'), ...over };
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('miss reserves, in-progress until insert, then hit', () => {
  const drc = new DuplicateRequestCache();
  assert.equal(drc.lookup(key()), 'miss');
  assert.equal(drc.lookup(key()), 'in-progress');
  const reply = Buffer.from('reply');
  drc.insert(key(), reply);
  const r = drc.lookup(key());
  assert.ok(typeof r === 'object');
  assert.equal(r.reply, reply);
  assert.deepEqual(drc.counters, { hits: 1, misses: 1, inProgress: 1, evictions: 0, expirations: 0 });
});

test('the key ignores the port but not the address, xid, procedure or arguments', () => {
  const drc = new DuplicateRequestCache();
  drc.lookup(key());
  drc.insert(key(), Buffer.from('r'));
  assert.notEqual(drc.lookup(key({ address: '::ffff:192.0.2.1' })), 'miss', 'mapped IPv4 is the same client');
  for (const other of [{ address: '192.0.2.2' }, { xid: 43 }, { proc: 9 }, { vers: 2 }, { prog: 100005 }, { args: Buffer.from('create bar') }, { args: Buffer.from('create foo!') }]) {
    assert.equal(drc.lookup(key(other)), 'miss', JSON.stringify(other));
  }
});

test('an abandoned call runs again', () => {
  const drc = new DuplicateRequestCache();
  assert.equal(drc.lookup(key()), 'miss');
  drc.insert(key(), undefined);
  assert.equal(drc.size, 0);
  assert.equal(drc.lookup(key()), 'miss');
});

test('least recently used entries are evicted by count', () => {
  const drc = new DuplicateRequestCache({ maxEntries: 3 });
  for (const xid of [1, 2, 3]) {
    drc.lookup(key({ xid }));
    drc.insert(key({ xid }), Buffer.from(`r${xid}`));
  }
  assert.notEqual(drc.lookup(key({ xid: 1 })), 'miss'); // touch 1: 2 is now the oldest
  drc.lookup(key({ xid: 4 }));
  drc.insert(key({ xid: 4 }), Buffer.from('r4'));
  assert.equal(drc.size, 3);
  assert.equal(drc.counters.evictions, 1);
  assert.notEqual(drc.lookup(key({ xid: 1 })), 'miss');
  assert.notEqual(drc.lookup(key({ xid: 3 })), 'miss');
  assert.equal(drc.lookup(key({ xid: 2 })), 'miss');
});

test('and by bytes; a reply larger than the cache is not kept', () => {
  const drc = new DuplicateRequestCache({ maxBytes: 3000 });
  for (let xid = 1; xid <= 5; xid++) {
    drc.lookup(key({ xid }));
    drc.insert(key({ xid }), Buffer.alloc(1000));
  }
  assert.ok(drc.bytes <= 3000, `${drc.bytes}`);
  assert.equal(drc.size, 2);
  assert.equal(drc.lookup(key({ xid: 1 })), 'miss');
  drc.insert(key({ xid: 1 }), undefined);
  drc.lookup(key({ xid: 9 }));
  drc.insert(key({ xid: 9 }), Buffer.alloc(5000));
  assert.equal(drc.lookup(key({ xid: 9 })), 'miss');
});

test('entries expire after the ttl; running calls keep their mark', () => {
  const c = clock();
  const drc = new DuplicateRequestCache({ ttlMs: 120_000, now: c.now });
  drc.lookup(key({ xid: 1 }));
  drc.insert(key({ xid: 1 }), Buffer.from('r1'));
  drc.lookup(key({ xid: 2 })); // still running
  c.advance(119_000);
  assert.notEqual(drc.lookup(key({ xid: 1 })), 'miss', 'a hit refreshes the entry');
  c.advance(119_000);
  assert.notEqual(drc.lookup(key({ xid: 1 })), 'miss');
  c.advance(120_000);
  assert.equal(drc.lookup(key({ xid: 1 })), 'miss');
  assert.equal(drc.lookup(key({ xid: 2 })), 'in-progress');
  assert.ok(drc.counters.expirations >= 1);
});

test('with RpcServer: a retransmission on a new connection gets the first reply', async () => {
  const drc = new DuplicateRequestCache();
  let runs = 0;
  const procs = new Map<number, ProcedureDef>([
    [1, {
      name: 'CREATE',
      idempotent: false,
      handler: async (r) => {
        const n = r.uint();
        runs++;
        await new Promise((res) => setTimeout(res, 50));
        const seq = runs;
        return (w) => w.uint(n).uint(seq);
      },
    }],
  ]);
  const server = new RpcServer({ replyCache: drc });
  server.register({ prog: 0x2000_0777, vers: 1, procedures: procs });
  const port = await server.listen(0);
  try {
    const args = Buffer.alloc(4);
    args.writeUInt32BE(7);
    const call = callRecord({ xid: 0x1234, prog: 0x2000_0777, vers: 1, proc: 1, args });
    const a = await rawConnect(port);
    a.socket.write(call);
    a.socket.write(call); // while the first still runs: dropped
    const first = await a.next();
    a.socket.destroy();
    const b = await rawConnect(port);
    b.socket.write(call);
    const again = await b.next();
    assert.deepEqual(again, first);
    assert.equal(runs, 1);
    const { body } = parseReply(again);
    assert.deepEqual([body.uint(), body.uint()], [7, 1]);
    // Same xid, other arguments: a new call.
    args.writeUInt32BE(8);
    b.socket.write(callRecord({ xid: 0x1234, prog: 0x2000_0777, vers: 1, proc: 1, args }));
    const other = parseReply(await b.next()).body;
    assert.deepEqual([other.uint(), other.uint()], [8, 2]);
    b.socket.destroy();
  } finally {
    await server.close();
  }
});
