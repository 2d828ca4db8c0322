// The server side of `npm run bench:rpc`, run in its own process so the load
// generator does not share its event loop: either tsnfs's RpcServer answering
// NULL, or a raw echo server with the same record framing (the limit).

import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { RpcServer } from '../src/rpc/index.js';
import { RecordDecoder, recordMark } from '../src/rpc/record.js';

export const BENCH_PROG = 0x2000_0300;

async function main(): Promise<void> {
  const mode = process.argv[2];
  let port: number;
  if (mode === 'rpc') {
    const server = new RpcServer({ maxInflight: 128 });
    server.register({ prog: BENCH_PROG, vers: 1, procedures: new Map([[0, { name: 'NULL', handler: () => undefined }]]) });
    port = await server.listen(0);
  } else if (mode === 'echo') {
    const srv = net.createServer({ noDelay: true }, (s) => {
      const dec = new RecordDecoder(1 << 20);
      let corked = false;
      s.on('data', (d: Buffer) => {
        // The same write batching as RpcServer, so the ratio shows the cost of RPC itself.
        if (!corked) {
          corked = true;
          s.cork();
          setImmediate(() => {
            corked = false;
            s.uncork();
          });
        }
        for (const rec of dec.push(d)) {
          s.write(recordMark(rec.length));
          s.write(rec);
        }
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = (srv.address() as net.AddressInfo).port;
  } else {
    throw new Error('usage: rpc-peer rpc|echo');
  }
  process.stdout.write(`${port}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
