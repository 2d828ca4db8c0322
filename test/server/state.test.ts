import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openState, defaultStateDir, makeWriteVerifier, StateError, SECRET_BYTES } from '../../src/server/state.js';

let root: string;
let n = 0;
const fresh = (): string => path.join(root, `state-${n++}`, 'nested');

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-state-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const mode = (p: string): number => fs.statSync(p).mode & 0o777;

test('creates the directory 0700 and the secret 0600', () => {
  const old = process.umask(0o022);
  try {
    const dir = fresh();
    const s = openState(dir);
    assert.equal(s.dir, dir);
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(path.join(dir, 'secret')), 0o600);
    assert.equal(mode(path.join(dir, 'boot')), 0o600);
    assert.equal(s.secret.length, SECRET_BYTES);
    // No temp files left behind.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['boot', 'secret']);
  } finally {
    process.umask(old);
  }
});

test('the secret is stable across opens; boot count and verifier change every time', () => {
  const dir = fresh();
  const opens = [openState(dir), openState(dir), openState(dir)];
  assert.deepEqual(opens.map((s) => s.bootCount), [1, 2, 3]);
  for (const s of opens) assert.deepEqual(s.secret, opens[0]!.secret);
  const verifiers = new Set(opens.map((s) => s.writeVerifier.toString('hex')));
  assert.equal(verifiers.size, 3);
  for (const s of opens) assert.equal(s.writeVerifier.length, 8);
  // Even when the clock stands still.
  const a = openState(dir, { now: () => 1_700_000_000_000 });
  const b = openState(dir, { now: () => 1_700_000_000_000 });
  assert.notDeepEqual(a.writeVerifier, b.writeVerifier);
  assert.equal(fs.readFileSync(path.join(dir, 'boot'), 'utf8'), '5\n');
});

test('a lost state dir still gives a new verifier', () => {
  const dir = fresh();
  const a = openState(dir, { now: () => 1_000_000 });
  fs.rmSync(dir, { recursive: true });
  const b = openState(dir, { now: () => 1_000_001 });
  assert.equal(a.bootCount, b.bootCount);
  assert.notDeepEqual(a.writeVerifier, b.writeVerifier);
  assert.notDeepEqual(a.secret, b.secret);
  assert.deepEqual(makeWriteVerifier(1, 2 ** 32 + 5), Buffer.from('0000000100000005', 'hex'));
});

test('export ids are stable, distinct, nonzero, and survive reordering', () => {
  const dir = fresh();
  const s1 = openState(dir);
  const a = s1.exportId('/srv/a');
  const b = s1.exportId('/srv/b');
  assert.notEqual(a, b);
  assert.ok(a > 0 && a <= 0xffff_ffff && b > 0);
  assert.equal(s1.exportId('/srv/a/'), a, 'trailing slash is the same export');
  assert.equal(mode(path.join(dir, 'exports.json')), 0o600);
  const s2 = openState(dir);
  // Asked in the other order, after a restart.
  assert.equal(s2.exportId('/srv/b'), b);
  assert.equal(s2.exportId('/srv/c') !== a && s2.exportId('/srv/c') !== b, true);
  assert.equal(s2.exportId('/srv/a'), a);
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'exports.json'), 'utf8'));
  assert.deepEqual(Object.keys(saved.ids).sort(), ['/srv/a', '/srv/b', '/srv/c']);
});

test('damaged files are reported, not replaced', () => {
  const dir = fresh();
  openState(dir);
  fs.writeFileSync(path.join(dir, 'secret'), 'short');
  assert.throws(() => openState(dir), StateError);
  const dir2 = fresh();
  openState(dir2);
  fs.writeFileSync(path.join(dir2, 'boot'), 'twelve');
  assert.throws(() => openState(dir2), /not a boot counter/);
  const dir3 = fresh();
  openState(dir3).exportId('/x');
  fs.writeFileSync(path.join(dir3, 'exports.json'), '{"ids": {"/x": 0}}');
  assert.throws(() => openState(dir3), /bad id/);
});

test('a secret readable by others is tightened to 0600', () => {
  const dir = fresh();
  const s = openState(dir);
  fs.chmodSync(path.join(dir, 'secret'), 0o644);
  assert.deepEqual(openState(dir).secret, s.secret);
  assert.equal(mode(path.join(dir, 'secret')), 0o600);
});

test('default state dir', () => {
  assert.equal(defaultStateDir({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }, 1000), '/x/state/tsnfs');
  assert.equal(defaultStateDir({ HOME: '/home/u' }, 1000), '/home/u/.local/state/tsnfs');
  assert.equal(defaultStateDir({ XDG_STATE_HOME: 'relative', HOME: '/home/u' }, 1000), '/home/u/.local/state/tsnfs');
  assert.equal(defaultStateDir({ XDG_STATE_HOME: '/x/state', HOME: '/root' }, 0), '/var/lib/tsnfs');
});
