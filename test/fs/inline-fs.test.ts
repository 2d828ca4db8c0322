import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { constants as C } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BACKOFF_MS, CHANGE_WAIT_MS, CREATE_INLINE_MS, CREATE_PROBE_EVERY, INLINE_READ_MAX, InlineFs, SLOW_CALLS, SLOW_MS, WINDOW_MS } from '../../src/fs/inline-fs.js';

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-inline-'));
}

for (const enabled of [true, false]) {
  test(`calls give the same results ${enabled ? 'inline' : 'on the threadpool'}`, async () => {
    const dir = await tmp();
    try {
      const io = new InlineFs(enabled);
      const p = path.join(dir, 'f');
      const fd = await io.open(p, C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600);
      await fs.writeFile(p, 'hello, inline');
      await io.fchmod(fd, 0o640);
      const st = await io.lstat(p);
      assert.equal(Number(st.mode) & 0o777, 0o640);
      assert.equal(st.size, 13n);
      const buf = Buffer.alloc(5);
      assert.equal(await io.read(fd, buf, 5, 7), 5);
      assert.equal(buf.toString(), 'inlin');
      await io.close(fd);
      const again = await io.open(p, C.O_RDONLY);
      await io.close(again);
      await io.unlink(p);
      assert.equal(await io.tryLstat(p), undefined);
      assert.equal(await io.tryLstat(path.join(p, 'below')), undefined, 'ENOTDIR is nothing there too');
      await assert.rejects(io.lstat(p), { code: 'ENOENT' });
      await assert.rejects(io.unlink(p), { code: 'ENOENT' });
      await assert.rejects(io.open(p, C.O_RDONLY), { code: 'ENOENT' });
      assert.equal(io.counters.inline > 0, enabled);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
}

test('large reads always go to the threadpool', async () => {
  const dir = await tmp();
  try {
    const io = new InlineFs(true);
    const p = path.join(dir, 'big');
    await fs.writeFile(p, Buffer.alloc(INLINE_READ_MAX + 1, 1));
    const fd = await io.open(p, C.O_RDONLY);
    const before = io.counters.inline;
    assert.equal(await io.read(fd, Buffer.alloc(INLINE_READ_MAX + 1), INLINE_READ_MAX + 1, 0), INLINE_READ_MAX + 1);
    assert.equal(io.counters.inline, before, 'it did not run inline');
    await io.read(fd, Buffer.alloc(10), 10, 0);
    assert.equal(io.counters.inline, before + 1, 'a small read does');
    await io.close(fd);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test(`creating opens run inline while cheap; costly ones go to the threadpool, with one probe in ${CREATE_PROBE_EVERY}`, async () => {
  const dir = await tmp();
  try {
    // Each reading of the clock moves it by createStep ms: an inline create
    // reads it before and after, so it seems to take that long.
    let createStep = 0;
    const io = new InlineFs(true, steppingClock(() => createStep));
    const fds: number[] = [];
    let n = 0;
    const create = async (): Promise<boolean> => {
      const before = io.counters.inline;
      fds.push(await io.open(path.join(dir, `f${n++}`), C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600));
      return io.counters.inline > before;
    };
    assert.equal(await create(), true, 'a cheap create runs inline');
    createStep = CREATE_INLINE_MS * 5; // costly, yet not slow enough for a backoff
    assert.ok(createStep * 2 < SLOW_MS);
    assert.equal(await create(), true, 'the first costly one still did: its cost was not known yet');
    const inline: boolean[] = [];
    for (let i = 0; i < CREATE_PROBE_EVERY; i++) inline.push(await create());
    assert.equal(inline.filter(Boolean).length, 1, 'one probe among them ran inline');
    assert.equal(inline[CREATE_PROBE_EVERY - 1], true);
    createStep = 0;
    let queued = 0;
    while (!(await create())) queued++;
    assert.ok(queued < CREATE_PROBE_EVERY, 'the next probe comes within CREATE_PROBE_EVERY creates');
    for (let i = 0; i < 8; i++) assert.equal(await create(), true, 'a cheap probe brought creates back inline');
    assert.equal(io.counters.backoffs, 0);
    for (const fd of fds) await io.close(fd);
    assert.equal((await fs.readdir(dir)).length, n, 'every create made its file');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('slow creates send creates to the threadpool, not the other calls', async () => {
  const dir = await tmp();
  try {
    let step = 0;
    const io = new InlineFs(true, steppingClock(() => step));
    const fds: number[] = [];
    // Creating probes far slower than SLOW_MS (an inode search on a busy file system)...
    step = SLOW_MS * 3;
    for (let i = 0; i < 4 * CREATE_PROBE_EVERY; i++) fds.push(await io.open(path.join(dir, `f${i}`), C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600));
    step = 0;
    // ...leave lstats inline: no backoff.
    assert.equal(io.counters.backoffs, 0);
    assert.equal(io.active, true);
    const before = io.counters.inline;
    await io.lstat(dir);
    assert.equal(io.counters.inline, before + 1, 'an lstat still runs inline');
    for (const fd of fds) await io.close(fd);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('an unlink behind a change to its directory waits inline while creates are short, on the threadpool while they are not', async () => {
  const dir = await tmp();
  try {
    let step = 0;
    const io = new InlineFs(true, steppingClock(() => step));
    for (const n of ['a', 'b', 'c']) await fs.writeFile(path.join(dir, n), '');
    // Creates measured short: an unlink behind a change runs inline.
    step = CHANGE_WAIT_MS / 4;
    await io.close(await io.open(path.join(dir, 'short'), C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600));
    step = 0;
    let before = io.counters.inline;
    await io.unlink(path.join(dir, 'a'), true);
    assert.equal(io.counters.inline, before + 1);
    // Creates measured long (an inode search on ext4 without a journal): to the threadpool.
    step = CHANGE_WAIT_MS * 8;
    await io.close(await io.open(path.join(dir, 'long'), C.O_CREAT | C.O_EXCL | C.O_RDWR, 0o600));
    step = 0;
    before = io.counters.inline;
    await io.unlink(path.join(dir, 'b'), true);
    assert.equal(io.counters.inline, before);
    // With no change in flight it is inline whatever creates cost.
    await io.unlink(path.join(dir, 'c'));
    assert.equal(io.counters.inline, before + 1);
    assert.deepEqual((await fs.readdir(dir)).sort(), ['long', 'short']);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** A clock that moves `step` ms each time it is read. */
function steppingClock(step: () => number): () => number {
  let t = 1000;
  return () => (t += step());
}

test(`${SLOW_CALLS} slow calls within ${WINDOW_MS} ms send calls to the threadpool for ${BACKOFF_MS} ms`, async () => {
  let step = 0;
  let t = 1000;
  const clock = () => (t += step);
  const io = new InlineFs(true, clock);
  const here = path.resolve('.');
  // Fast calls: inline.
  for (let i = 0; i < 10; i++) await io.lstat(here);
  assert.equal(io.active, true);
  // Each call now seems to take twice SLOW_MS.
  step = SLOW_MS * 2;
  for (let i = 0; i < SLOW_CALLS - 1; i++) await io.lstat(here);
  assert.equal(io.active, true, 'fewer slow calls than SLOW_CALLS: still inline');
  await io.lstat(here);
  step = 0;
  assert.equal(io.active, false, 'backed off');
  assert.equal(io.counters.backoffs, 1);
  const inline = io.counters.inline;
  await io.lstat(here);
  assert.equal(io.counters.inline, inline, 'on the threadpool meanwhile');
  t += BACKOFF_MS;
  assert.equal(io.active, true, 'inline again after the backoff');
});

test('slow calls spread wider than the window do not back off', async () => {
  let slow = false;
  let t = 1000;
  const io = new InlineFs(true, () => (t += slow ? SLOW_MS * 2 : 0));
  const here = path.resolve('.');
  for (let i = 0; i < SLOW_CALLS * 3; i++) {
    slow = true;
    await io.lstat(here);
    slow = false;
    t += WINDOW_MS; // the next slow call comes a whole window later
  }
  assert.equal(io.counters.backoffs, 0);
  assert.equal(io.active, true);
});

test('disabled: never inline', async () => {
  const io = new InlineFs(false, steppingClock(() => 0));
  await io.lstat(path.resolve('.'));
  assert.equal(io.active, false);
  assert.equal(io.counters.inline, 0);
});
