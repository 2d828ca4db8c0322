// Data integrity through the server's recycled buffers: READ data lives in
// pooled buffers given back once the reply is written, and WRITE records in
// pooled buffers reused once the data is in the file. Many calls in flight
// at once, of every size, must each see exactly their own bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../src/server/index.js';
import { Nfs, ROOT, mount, nfsClient, ok } from '../helpers/nfs.js';

const MIB = 1024 * 1024;

test('concurrent large and small READs and WRITEs each carry their own bytes', async () => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-buffers-'));
  const dir = path.join(base, 'export');
  await fs.mkdir(dir);
  await fs.chmod(dir, 0o777);
  const server = await startServer({ dir, nfsPort: 0, portmapPort: 0, stateDir: path.join(base, 'state') });
  const client = nfsClient(server.nfsPort, process.getuid?.() === 0 ? ROOT : undefined);
  try {
    const nfs = new Nfs(client);
    const root = await mount(client, dir);
    const file = await nfs.create(root, 'data', 0o666);
    const size = 24 * MIB;
    const expected = crypto.randomBytes(size);

    // 1 MiB UNSTABLE writes, all at once, in a shuffled order.
    const order = Array.from({ length: size / MIB }, (_, i) => i).sort(() => Math.random() - 0.5);
    await Promise.all(order.map((i) => nfs.write(file, BigInt(i * MIB), expected.subarray(i * MIB, (i + 1) * MIB), 0)));
    ok(await nfs.call('COMMIT', { file, offset: 0n, count: 0 }));
    assert.ok((await fs.readFile(path.join(dir, 'data'))).equals(expected), 'the file holds what was written');

    // Reads of every size at once, small ones (served inline) among large ones.
    const reads: { offset: number; count: number }[] = [];
    for (let i = 0; i < 200; i++) {
      const count = [4096, 512, 65536, 65537, MIB, 300 * 1024][i % 6]!;
      reads.push({ offset: crypto.randomInt(0, size - count), count });
    }
    // ... while writes to a second file keep record buffers moving.
    const other = await nfs.create(root, 'other', 0o666);
    const noise = crypto.randomBytes(MIB);
    const writes = Array.from({ length: 16 }, (_, i) => nfs.write(other, BigInt(i * MIB), noise, 0));
    const got = await Promise.all(reads.map((r) => nfs.read(file, BigInt(r.offset), r.count)));
    await Promise.all(writes);
    for (let i = 0; i < reads.length; i++) {
      const r = reads[i]!;
      assert.equal(got[i]!.count, r.count);
      assert.ok(got[i]!.data.equals(expected.subarray(r.offset, r.offset + r.count)), `READ ${r.count} at ${r.offset}`);
    }
    const otherBytes = await fs.readFile(path.join(dir, 'other'));
    for (let i = 0; i < 16; i++) assert.ok(otherBytes.subarray(i * MIB, (i + 1) * MIB).equals(noise), `second file, MiB ${i}`);
  } finally {
    client.close();
    await server.close();
    await fs.rm(base, { recursive: true, force: true });
  }
});
