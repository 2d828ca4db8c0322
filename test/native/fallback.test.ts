// The pure-TypeScript fallbacks, in a child process started with
// TSNFS_NO_NATIVE=1 (the addon may well be built: the variable must win).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

test('TSNFS_NO_NATIVE=1: every wrapper takes its fallback and the IO engine still verifies', async (t) => {
  const child = fileURLToPath(new URL('./fallback-child.js', import.meta.url));
  const { stdout } = await run(process.execPath, [child], { env: { ...process.env, TSNFS_NO_NATIVE: '1' }, timeout: 60_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as {
    ok: boolean;
    status: { available: boolean; reason?: string };
    engine: { backend: string; threads: number; queueDepth: number };
    randomMs: number;
    stats: { completed: number; batches: number; maxQueueDepth: number; errors: number };
  };
  t.diagnostic(`fallback: ${out.status.reason}; 1,000 writes + 2,000 reads verified in ${out.randomMs.toFixed(0)} ms; ${JSON.stringify(out.stats)}`);
  assert.equal(out.ok, true);
  assert.deepEqual(out.status, { available: false, reason: 'disabled by TSNFS_NO_NATIVE=1' });
  assert.deepEqual(out.engine, { backend: 'fallback', threads: 4, queueDepth: 4 });
  assert.ok(out.stats.maxQueueDepth >= 1000);
});
