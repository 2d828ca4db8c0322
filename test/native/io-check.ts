// A data-verification workload shared by the native and fallback IO engine
// tests: random 4 KiB writes to distinct blocks, all in flight at once, then
// reads of the same blocks and of random unaligned ranges, every byte checked
// against an in-memory model (and against the file read the ordinary way).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IoEngine } from '../../src/native/index.js';

/** A small deterministic PRNG (mulberry32), so failures replay. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomIoResult {
  writes: number;
  reads: number;
  bytes: number;
}

export async function randomWritesThenReads(engine: IoEngine, dir: string, opts: { writes?: number; seed?: number } = {}): Promise<RandomIoResult> {
  const BLOCK = 4096;
  const BLOCKS = 4096; // a 16 MiB file
  const writes = opts.writes ?? 1000;
  const rand = rng(opts.seed ?? 42);
  const file = path.join(dir, `random-${opts.seed ?? 42}`);
  const fd = fs.openSync(file, 'w+');
  try {
    fs.ftruncateSync(fd, BLOCK * BLOCKS);
    const model = Buffer.alloc(BLOCK * BLOCKS);

    // Distinct blocks (a partial Fisher-Yates shuffle), so concurrent writes never overlap.
    const order = Array.from({ length: BLOCKS }, (_, i) => i);
    for (let i = 0; i < writes; i++) {
      const j = i + Math.floor(rand() * (BLOCKS - i));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const blocks = order.slice(0, writes);
    const data = blocks.map(() => randomBytes(BLOCK));
    blocks.forEach((b, i) => data[i]!.copy(model, b * BLOCK));

    const written = await Promise.all(engine.submit(blocks.map((b, i) => ({ op: 'write' as const, fd, buffer: data[i]!, position: b * BLOCK }))));
    assert.ok(written.every((n) => n === BLOCK), 'every write reports its whole length');

    // Read the same blocks back, into fresh buffers.
    const back = blocks.map(() => Buffer.alloc(BLOCK, 0xee));
    const read = await Promise.all(engine.submit(blocks.map((b, i) => ({ op: 'read' as const, fd, buffer: back[i]!, position: b * BLOCK }))));
    assert.ok(read.every((n) => n === BLOCK));
    for (let i = 0; i < writes; i++) {
      if (!back[i]!.equals(data[i]!)) assert.fail(`block ${blocks[i]} differs after read-back`);
    }

    // Random unaligned ranges, anywhere (written or hole), into the middle of a buffer.
    const ranges = Array.from({ length: writes }, () => {
      const position = Math.floor(rand() * (BLOCK * BLOCKS - 1));
      const length = 1 + Math.floor(rand() * Math.min(3 * BLOCK, BLOCK * BLOCKS - position));
      return { position, length, buffer: Buffer.alloc(length + 10, 0xee) };
    });
    const got = await Promise.all(
      engine.submit(ranges.map((r) => ({ op: 'read' as const, fd, buffer: r.buffer, offset: 5, length: r.length, position: r.position }))),
    );
    ranges.forEach((r, i) => {
      assert.equal(got[i], r.length);
      if (!r.buffer.subarray(5, 5 + r.length).equals(model.subarray(r.position, r.position + r.length))) {
        assert.fail(`range ${r.position}+${r.length} differs`);
      }
      assert.equal(r.buffer[4], 0xee, 'nothing written before offset');
      assert.equal(r.buffer[5 + r.length], 0xee, 'nothing written after length');
    });

    await engine.run({ op: 'fdatasync', fd });
    assert.ok(fs.readFileSync(file).equals(model), 'the file, read the ordinary way, matches the model');
    return { writes, reads: 2 * writes, bytes: writes * BLOCK };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
