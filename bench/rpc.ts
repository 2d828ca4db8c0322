// npm run bench:rpc — NULL-call round trips per second over loopback TCP at
// 1, 8 and 64 calls in flight: tsnfs's RpcServer against a raw Node echo
// server with the same framing, measured in the same run. Each server runs
// in a child process; the load generator keeps N records in flight on one
// connection and counts replies.

import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { RecordDecoder } from '../src/rpc/record.js';
import { RpcClient } from '../src/rpc/index.js';
import { callRecord } from '../test/helpers/raw-rpc.js';
import { BENCH_PROG } from './rpc-peer.js';

const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 3) * 1000;
const DEPTHS = [1, 8, 64];

async function startPeer(mode: 'rpc' | 'echo'): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./rpc-peer.js', import.meta.url)), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { port: Number(line.toString().trim()), child };
}

/** Keep `depth` NULL calls in flight for the duration; returns calls per second. */
async function load(port: number, depth: number): Promise<number> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  const records = Array.from({ length: depth }, (_, i) => callRecord({ xid: i + 1, prog: BENCH_PROG, vers: 1, proc: 0 }));
  const dec = new RecordDecoder(1 << 20);
  let done = 0;
  let stopping = false;
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    setTimeout(() => (stopping = true), DURATION_MS);
    let outstanding = depth;
    socket.on('data', (d: Buffer) => {
      const replies = dec.push(d);
      done += replies.length;
      if (stopping) {
        outstanding -= replies.length;
        if (outstanding === 0) resolve();
        return;
      }
      // Refill: one new call per reply keeps the depth constant.
      for (const r of replies) socket.write(records[(r.readUInt32BE(0) - 1) % depth]!);
    });
    for (const r of records) socket.write(r);
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  socket.destroy();
  return done / secs;
}

/** The same load through tsnfs's own RpcClient (client and server both ours). */
async function loadWithClient(port: number, depth: number): Promise<number> {
  const client = new RpcClient({ host: '127.0.0.1', port, prog: BENCH_PROG, vers: 1 });
  await client.connect();
  let done = 0;
  const deadline = Date.now() + DURATION_MS;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: depth }, async () => {
      while (Date.now() < deadline) {
        await client.call(0, undefined, () => undefined);
        done++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  client.close();
  return done / secs;
}

async function main(): Promise<void> {
  const rpc = await startPeer('rpc');
  const echo = await startPeer('echo');
  const rows: string[] = [];
  console.log(`NULL round trips/s over loopback, ${DURATION_MS / 1000} s per point (node ${process.version})`);
  console.log('in flight | raw echo | tsnfs RpcServer | ratio | RpcClient->RpcServer');
  try {
    for (const depth of DEPTHS) {
      await load(echo.port, depth); // warm-up both peers at this depth
      await load(rpc.port, depth);
      const e = await load(echo.port, depth);
      const r = await load(rpc.port, depth);
      const c = await loadWithClient(rpc.port, depth);
      const row = `${String(depth).padStart(9)} | ${e.toFixed(0).padStart(8)} | ${r.toFixed(0).padStart(15)} | ${(r / e).toFixed(2).padStart(5)} | ${c.toFixed(0).padStart(8)}`;
      rows.push(row);
      console.log(row);
    }
  } finally {
    rpc.child.kill();
    echo.child.kill();
  }
}

void main();
