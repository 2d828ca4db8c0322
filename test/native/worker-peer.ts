// Run in a worker thread by lifecycle.test.ts: starts an IO engine and a
// descriptor channel, fills them with work, reports 'busy' and never cleans
// up, so the test can terminate the worker in the middle of it all.

import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { FdChannel, FdListener, IoEngine } from '../../src/native/index.js';

const { dir, id } = workerData as { dir: string; id: number };
const engine = new IoEngine({ threads: 2, queueDepth: 16 });
const fd = fs.openSync(path.join(dir, `w${id}`), 'w+');
const listener = FdListener.listen(path.join(dir, `w${id}.sock`));
listener.on('connection', (ch) => ch.on('message', () => undefined));
const ch = await FdChannel.connect(path.join(dir, `w${id}.sock`));
for (let i = 0; i < 100; i++) ch.send('x', [fd]).catch(() => undefined);
const buf = Buffer.alloc(65536, id);
for (let i = 0; i < 2000; i++) engine.run({ op: 'write', fd, buffer: buf, position: i * 65536 }).catch(() => undefined);
parentPort!.postMessage('busy');
