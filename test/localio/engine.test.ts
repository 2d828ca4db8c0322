// The LOCALIO engine on real files, without a server: LocalioEngine over
// the IoEngine, with a plain descriptor and a second one opened O_DIRECT
// (what a twin grant is), on ext4 (the temp directory) and a loop-mounted
// XFS with 4096-byte sectors.
//
// - Random writes and reads in direct mode against a model: bytes on disk
//   (plain fs) and bytes read back are right, whatever the offsets.
// - The pool at its minimum (one buffer): many writes at once wait for it
//   in turn and all land; a 64 MiB write through a client in direct mode
//   finishes with the right bytes.
// - Fallbacks: a file system that refuses what statx promised (EINVAL), a
//   memory alignment beyond the pool's, no O_DIRECT descriptor: buffered,
//   counted, right bytes.
// - A write that runs out of space reports the prefix that landed, never
//   the whole.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '../../src/client/index.js';
import { EngineIo, type SyncKind } from '../../src/localio/io.js';
import { GrantedFile, LocalioEngine, type CacheMode, type DirectDescriptor } from '../../src/localio/engine.js';
import { IoEngine, native, nativeStatus, openODirect, type DioAlign } from '../../src/native/index.js';
import { mountXfs, type ScratchMount } from '../native/scratch-fs.js';
import { makeDirs, noFdPassing, startServerChild, type Dirs } from './helpers.js';

const skip = native ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;

/** A file opened twice: plain, and O_DIRECT on its own open file description. */
class TestFile extends GrantedFile {
  readonly directFd: number;
  opens = 0;

  constructor(
    readonly file: string,
    private readonly fakeAlign?: DioAlign,
    noDirect = false,
  ) {
    const fd = fs.openSync(file, 'r+');
    const dfd = openODirect(file, fs.constants.O_RDWR);
    super(fd, async (): Promise<DirectDescriptor | undefined> => {
      this.opens++;
      return noDirect ? undefined : { fd: dfd, release: () => undefined };
    });
    this.directFd = dfd;
  }

  override dio(): DioAlign {
    return this.fakeAlign ?? super.dio();
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.closeSync(this.directFd);
  }
}

describe('LocalioEngine on real files', { skip, timeout: 300_000 }, () => {
  let io: EngineIo;
  let dir: string;
  let xfs: ScratchMount | string;
  const dirs: { name: string; dir: string }[] = [];

  before(async () => {
    io = new EngineIo(new IoEngine({ threads: 2, queueDepth: 64 }));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-engine-'));
    dirs.push({ name: 'ext4', dir });
    xfs = await mountXfs({ sectorSize: 4096 });
    if (typeof xfs !== 'string') dirs.push({ name: 'xfs', dir: xfs.dir });
  });

  after(async () => {
    await io?.close();
    if (typeof xfs !== 'string') await xfs.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const engine = (mode: CacheMode, poolBytes?: number): LocalioEngine => new LocalioEngine({ io, readMode: mode, writeMode: mode, maxIoBytes: 256 << 10, poolBytes });

  test('direct mode: random writes and reads against a model', async () => {
    for (const { name, dir: where } of dirs) {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              write: fc.boolean(),
              pos: fc.integer({ min: 0, max: 600_000 }),
              len: fc.integer({ min: 1, max: 300_000 }),
              pieces: fc.integer({ min: 1, max: 4 }),
              memOff: fc.integer({ min: 0, max: 7 }),
              sync: fc.constantFrom<SyncKind>('none', 'data', 'file'),
            }),
            { minLength: 1, maxLength: 12 },
          ),
          async (ops) => {
            const file = path.join(where, 'model.bin');
            let model = randomBytes(200_000);
            fs.writeFileSync(file, model);
            const f = new TestFile(file);
            const e = engine('direct', 1); // one bounce buffer
            try {
              for (const op of ops) {
                if (op.write) {
                  const data = randomBytes(op.len);
                  // Pieces as the write-back cache hands them: several views, any sizes.
                  const cut = Array.from({ length: op.pieces - 1 }, (_, i) => Math.floor(((i + 1) * op.len) / op.pieces));
                  const pieces = [0, ...cut].map((s, i) => data.subarray(s, i + 1 < op.pieces ? cut[i] : op.len));
                  const n = await e.write(f, pieces, op.len, op.pos, op.sync);
                  assert.equal(n, op.len);
                  if (op.pos + op.len > model.length) model = Buffer.concat([model, Buffer.alloc(op.pos + op.len - model.length)]);
                  data.copy(model, op.pos);
                } else {
                  const buf = Buffer.alloc(op.len + op.memOff);
                  const n = await e.read(f, buf, op.memOff, op.len, op.pos);
                  const want = model.subarray(Math.min(op.pos, model.length), Math.min(op.pos + op.len, model.length));
                  assert.equal(n, want.length, `${name}: read [${op.pos}, +${op.len})`);
                  assert.ok(buf.subarray(op.memOff, op.memOff + n).equals(want), `${name}: bytes read`);
                }
              }
              assert.ok(fs.readFileSync(file).equals(model), `${name}: bytes on disk`);
              assert.equal(e.stats().fallbacks.directRefused, 0);
              assert.equal(e.stats().pool?.buffers, 1);
            } finally {
              f.close();
            }
          },
        ),
        { numRuns: 25 },
      );
    }
  });

  test('the pool at its minimum: many direct writes at once wait for the one buffer, in turn, and all land', async () => {
    const file = path.join(dir, 'pool.bin');
    fs.writeFileSync(file, '');
    const f = new TestFile(file);
    const e = engine('direct', 1);
    try {
      const data = randomBytes(64 * (256 << 10));
      const chunk = 256 << 10;
      const writes = [];
      for (let at = 0; at < data.length; at += chunk) writes.push(e.write(f, [data.subarray(at + 3, at + chunk), data.subarray(at, at + 3)].reverse(), chunk, at, 'none'));
      assert.deepEqual(await Promise.all(writes), writes.map(() => chunk));
      const s = e.stats();
      assert.equal(s.pool!.buffers, 1);
      assert.ok(s.pool!.waits > 0, 'writers waited for the buffer');
      assert.equal(s.pool!.free, 1);
      assert.equal(s.direct.writes, 64);
      assert.ok(s.maxQueueDepth > 1);
      assert.ok(fs.readFileSync(file).equals(data));
    } finally {
      f.close();
    }
  });

  test('fallbacks: O_DIRECT refused (EINVAL), memory alignment beyond the pool, no direct descriptor', async (t) => {
    if (typeof xfs === 'string') return t.skip(xfs);
    const cases: { why: string; make: (file: string) => TestFile; counter: 'directRefused' | 'unalignedMemory' }[] = [
      // XFS on 4096-byte sectors refuses 512-aligned direct IO: statx told the engine 512.
      { why: 'EINVAL', make: (file) => new TestFile(file, { memAlign: 512, offsetAlign: 512, readOffsetAlign: 512 }), counter: 'directRefused' },
      { why: 'memory', make: (file) => new TestFile(file, { memAlign: 8192, offsetAlign: 4096, readOffsetAlign: 4096 }), counter: 'unalignedMemory' },
      { why: 'no descriptor', make: (file) => new TestFile(file, undefined, true), counter: 'directRefused' },
    ];
    for (const c of cases) {
      const file = path.join(xfs.dir, `fb-${c.counter}.bin`);
      const model = randomBytes(100_000);
      fs.writeFileSync(file, model);
      const f = c.make(file);
      const e = engine('direct');
      try {
        const data = randomBytes(20_000);
        assert.equal(await e.write(f, [data], data.length, 512, 'data'), data.length, c.why);
        data.copy(model, 512);
        const buf = Buffer.alloc(30_000);
        assert.equal(await e.read(f, buf, 0, 30_000, 512), 30_000);
        assert.ok(buf.equals(model.subarray(512, 30_512)), c.why);
        assert.ok(fs.readFileSync(file).equals(model), c.why);
        const s = e.stats();
        assert.ok(s.fallbacks[c.counter] >= 1, `${c.why}: ${JSON.stringify(s.fallbacks)}`);
        assert.ok(s.buffered.reads >= 1 && s.buffered.writes >= 1, c.why);
        if (c.why === 'EINVAL') assert.equal(f.direct, false, 'learned once: later IO goes buffered at once');
      } finally {
        f.close();
      }
    }
  });

  test('a direct write that runs out of space reports the prefix that landed, never the whole', async (t) => {
    if (typeof xfs === 'string') return t.skip(xfs);
    const scratch = xfs.dir;
    const filler = path.join(scratch, 'filler');
    const free = (): number => {
      const s = fs.statfsSync(scratch);
      return s.bavail * s.bsize;
    };
    // Leave about 2 MiB free, then write 16 MiB.
    fs.writeFileSync(filler, '');
    const fd = fs.openSync(filler, 'r+');
    const big = Buffer.alloc(8 << 20);
    let at = 0;
    while (free() > 10 << 20) {
      fs.writeSync(fd, big, 0, big.length, at);
      at += big.length;
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const file = path.join(scratch, 'enospc.bin');
    fs.writeFileSync(file, '');
    const f = new TestFile(file);
    const e = engine('direct', 1);
    const data = randomBytes(32 << 20);
    try {
      let done = -1;
      try {
        await e.write(f, [data], data.length, 0, 'none');
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
        done = (err as { bytesDone?: number }).bytesDone ?? -1;
      }
      assert.ok(done >= 0 && done < data.length, `a prefix (${done} bytes), not the whole`);
      const onDisk = fs.readFileSync(file);
      assert.ok(onDisk.length >= done);
      assert.ok(onDisk.subarray(0, done).equals(data.subarray(0, done)), 'the prefix reported is on disk');
    } finally {
      f.close();
      fs.rmSync(filler);
      fs.rmSync(file);
    }
  });
});

describe('the pool at its minimum through a client', { skip: skip || noFdPassing(), timeout: 120_000 }, () => {
  let d: Dirs;
  before(() => {
    d = makeDirs();
  });
  after(() => d?.cleanup());

  test('a 64 MiB write in direct mode with one bounce buffer finishes with the right bytes', async () => {
    const srv = await startServerChild(d, { registry: d.registry });
    const c = await connect({ host: '127.0.0.1', nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: d.registry, localioWrite: 'direct', localioRead: 'direct', localioBufferPool: 1 });
    try {
      assert.equal(await c.localioReady(5000), true);
      const data = randomBytes(64 << 20);
      await c.writeFile('big.bin', data);
      assert.ok(fs.readFileSync(path.join(d.exp, 'big.bin')).equals(data));
      assert.ok((await c.readFile('big.bin')).equals(data));
      const io = c.stats().localio!.io;
      assert.equal(io.pool?.buffers, 1, 'the minimum: one max-size IO');
      assert.ok(io.pool!.bufferSize >= c.wsize);
      assert.ok(io.pool!.waits > 0, 'WRITEs waited for the buffer');
      assert.ok(io.direct.writeBytes >= 64 << 20, JSON.stringify(io));
      assert.equal(c.stats().nfsOps['WRITE'] ?? 0, 0);
    } finally {
      await c.close();
      await srv.stop();
    }
  });
});
