// The addon's lifecycle: where it is loaded from, and teardown of engines
// and sockets when a worker thread is terminated in the middle of IO.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { IoEngine, native, nativeStatus } from '../../src/native/index.js';

const skip = native ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;

/** Threads of this process named like the engine's workers. */
function engineThreads(): number {
  let n = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'tsnfs-io') n++;
    } catch {
      // the thread just exited
    }
  }
  return n;
}

test('nativeStatus says what is in use', (t) => {
  const s = nativeStatus();
  t.diagnostic(JSON.stringify(s));
  if (s.available) {
    assert.ok(native);
    assert.ok(s.path && fs.existsSync(s.path) && s.path.endsWith('tsnfs_native.node'));
  } else {
    assert.equal(native, undefined);
    assert.ok(s.reason);
  }
  // CI sets this where the toolchain is known to be present, so a broken
  // build fails loudly instead of turning the native tests into skips.
  if (process.env['TSNFS_REQUIRE_NATIVE'] === '1') assert.ok(s.available, `the addon must be available: ${s.reason}`);
});

test('engine workers are named, counted and joined on close', { skip }, async () => {
  const before = engineThreads();
  const e = new IoEngine({ threads: 3 });
  assert.equal(engineThreads(), before + 3);
  await e.close();
  assert.equal(engineThreads(), before);
});

test('terminating worker threads in the middle of IO and fd passing is clean', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-workers-'));
  try {
    const before = engineThreads();
    const peer = new URL('./worker-peer.js', import.meta.url);
    for (let id = 0; id < 10; id++) {
      const w = new Worker(peer, { workerData: { dir, id } });
      await new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await new Promise((r) => setTimeout(r, id % 4));
      await w.terminate();
    }
    assert.equal(engineThreads(), before, 'every worker thread of every engine was joined');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
