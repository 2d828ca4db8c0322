// Random file operations through the client, checked against a model of the
// file (fsx-style): writes of every size at any offset, reads (copying and
// zero-copy), truncates, syncs and reopens. After each sync the server's
// committed bytes must equal the model.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { NfsClient } from '../../src/client/index.js';
import { rng } from '../fs/suite.js';

export interface FsxOptions {
  seed: number;
  ops: number;
  /** What the server holds for the file now (committed). */
  committed: () => Promise<Buffer>;
  /** Called before each sync: e.g. arrange for the server to lose its uncommitted data. */
  beforeSync?: (random: () => number) => void;
  /** Largest offset written (default 600 KiB). */
  span?: number;
}

export async function fsx(c: NfsClient, name: string, o: FsxOptions): Promise<void> {
  const next = rng(o.seed);
  const int = (n: number): number => Math.floor(next() * n);
  const span = o.span ?? 600 * 1024;
  let model = Buffer.alloc(0);
  let h = await c.open(name, 'w+');
  const log: string[] = [];
  const where = (): string => `seed ${o.seed}: ${log.slice(-8).join('; ')}`;
  for (let op = 0; op < o.ops; op++) {
    const kind = next();
    if (kind < 0.45) {
      const off = int(span);
      const len = 1 + int(next() < 0.8 ? 9000 : 150 * 1024);
      const data = randomBytes(len);
      log.push(`write ${off} ${len}`);
      await h.write(data, 0, len, off);
      if (off + len > model.length) {
        const m = Buffer.alloc(off + len);
        model.copy(m);
        model = m;
      }
      data.copy(model, off);
    } else if (kind < 0.75) {
      const off = int(model.length + 10_000);
      const len = 1 + int(70_000);
      log.push(`read ${off} ${len}`);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await h.read(buf, 0, len, off);
      const want = model.subarray(Math.min(off, model.length), Math.min(off + len, model.length));
      assert.equal(bytesRead, want.length, where());
      assert.ok(buf.subarray(0, bytesRead).equals(want), `data: ${where()}`);
    } else if (kind < 0.82) {
      // What streams and readFile use: a view, at most to the end of a read chunk.
      const off = int(model.length + 10_000);
      const max = 1 + int(70_000);
      log.push(`chunk ${off} ${max}`);
      const view = await h.readChunk(off, max);
      const want = model.subarray(Math.min(off, model.length), Math.min(off + max, model.length));
      assert.ok(view.length <= want.length && (want.length === 0) === (view.length === 0), `chunk length ${view.length} of ${want.length}: ${where()}`);
      assert.ok(view.equals(want.subarray(0, view.length)), `chunk data: ${where()}`);
    } else if (kind < 0.87) {
      const len = int(model.length + 20_000);
      log.push(`truncate ${len}`);
      await h.truncate(len);
      const m = Buffer.alloc(len);
      model.copy(m, 0, 0, Math.min(len, model.length));
      model = m;
    } else if (kind < 0.95) {
      o.beforeSync?.(next);
      log.push('sync');
      await h.sync();
      assert.ok((await o.committed()).equals(model), `committed after sync: ${where()}`);
    } else {
      log.push('reopen');
      await h.close();
      assert.ok((await o.committed()).equals(model), `committed after close: ${where()}`);
      h = await c.open(name, 'r+');
      assert.equal((await h.stat()).size, model.length, where());
    }
  }
  await h.close();
  assert.ok((await o.committed()).equals(model), `final: ${where()}`);
}
