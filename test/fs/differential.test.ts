// The two backends promise the same semantics: drive both with one random
// sequence of operations and compare every outcome.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileType, FsError, LocalBackend, MemoryBackend, type Attrs, type Backend, type Cred } from '../../src/fs/index.js';
import { ALICE, BOB, ROOT, rng } from './suite.js';

const CREDS: Cred[] = [ROOT, ALICE, BOB];
const NAMES = ['a', 'b', 'c', 'd'];
const MODES = [0o777, 0o755, 0o700, 0o644, 0o600, 0o1777, 0o2775, 0o4755, 0o000];

type Outcome = { ok: true; value: unknown } | { ok: false; code: string };

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    if (!(err instanceof FsError)) throw err;
    return { ok: false, code: err.code };
  }
}

/** The attributes both backends must agree on. */
function comparable(a: Attrs): unknown {
  return { type: a.type, mode: a.mode, uid: a.uid, gid: a.gid, nlink: a.nlink, size: a.type === FileType.DIR ? undefined : a.size };
}

for (const stampSource of ['auto', 'index'] as const) {
  test(`local (${stampSource} stamps) and memory agree on random operation sequences`, () => differential(stampSource));
}

async function differential(stampSource: 'auto' | 'index'): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-diff-'));
  await fs.chmod(base, 0o755);
  const local = new LocalBackend({ root: base, stampSource });
  await local.init();
  const memory = new MemoryBackend();
  const backends: Backend[] = [local, memory];
  // Directory paths known to exist (in both), so operations target real objects most of the time.
  const dirs = new Set<string>(['']);
  const nodeAt = async (b: Backend, p: string): Promise<Buffer> => {
    let n = await b.root();
    for (const part of p.split('/').filter(Boolean)) n = (await b.lookup(ROOT, n, part)).node;
    return n;
  };
  // Node ids handed out earlier, paired by index: both must go stale together.
  const history: Buffer[][] = [[], []];
  const rand = rng(Number(process.env['TSNFS_FS_SEED'] ?? 20240601));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  try {
    for (let step = 0; step < Number(process.env['TSNFS_FS_STEPS'] ?? 1500); step++) {
      const cred = pick(CREDS);
      const dir = pick([...dirs]);
      const name = pick(NAMES);
      const other = pick([...dirs]);
      const op = pick(['create', 'mkdir', 'symlink', 'mknod', 'remove', 'rmdir', 'rename', 'link', 'write', 'read', 'setattr', 'readdir', 'lookup', 'access', 'old', 'old']);
      const old = Math.floor(rand() * history[0]!.length);
      const mode = pick(MODES);
      const offset = BigInt(Math.floor(rand() * 10000));
      const len = Math.floor(rand() * 3000);
      const how = pick(['unchecked', 'guarded', 'exclusive'] as const);
      const setWhat = pick(['mode', 'uid', 'gid', 'size', 'mtime', 'atime-now']);
      const toName = pick(NAMES);
      const uid = pick(CREDS).uid;
      const gid = pick([0, 1001, 1002, 3000]);
      const results: Outcome[] = [];
      for (const [bi, b] of backends.entries()) {
        const keep = (node: Buffer) => {
          history[bi]!.push(node);
        };
        const run = async (): Promise<unknown> => {
          const d = await nodeAt(b, dir);
          const target = async () => (await b.lookup(ROOT, d, name)).node;
          switch (op) {
            case 'create': {
              const r = await b.create(cred, d, name, how === 'exclusive' ? { mode: how, verifier: Buffer.from('verifier') } : { mode: how, attrs: { mode } });
              return comparable(r.attrs);
            }
            case 'mkdir':
              return comparable((await b.mkdir(cred, d, name, { mode })).attrs);
            case 'symlink':
              return comparable((await b.symlink(cred, d, name, 'somewhere', {})).attrs);
            case 'remove':
              return (await b.remove(cred, d, name), null);
            case 'rmdir':
              return (await b.rmdir(cred, d, name), null);
            case 'rename':
              return (await b.rename(cred, d, name, await nodeAt(b, other), toName), null);
            case 'link':
              return comparable((await b.link(cred, await target(), await nodeAt(b, other), name + 'l')).attrs);
            case 'write': {
              const w = await b.write(cred, await target(), offset, Buffer.alloc(len, step & 0xff), 2);
              return [w.count, comparable(w.wcc.after!)];
            }
            case 'read': {
              const r = await b.read(cred, await target(), offset, len);
              return [r.data.toString('hex'), r.eof];
            }
            case 'setattr': {
              const set =
                setWhat === 'mode' ? { mode } :
                setWhat === 'uid' ? { uid } :
                setWhat === 'gid' ? { gid } :
                setWhat === 'size' ? { size: offset } :
                setWhat === 'mtime' ? { mtime: { sec: 1_600_000_000, nsec: 0 } } :
                { atime: 'now' as const };
              return comparable((await b.setattr(cred, await target(), set)).after!);
            }
            case 'readdir': {
              const r = await b.readdir(cred, d, 0n, 1 << 20, false);
              return r.entries.map((e) => e.name).sort();
            }
            case 'lookup': {
              const l = await b.lookup(cred, d, name);
              keep(l.node);
              return comparable(l.attrs);
            }
            case 'mknod':
              return comparable((await b.mknod(cred, d, name, FileType.FIFO, { mode })).attrs);
            case 'old': {
              const n = history[bi]![old];
              return n ? comparable(await b.getattr(n)) : null;
            }
            default:
              return (await b.access(cred, await target(), 0x3f)).granted;
          }
        };
        results.push(await outcome(run()));
      }
      assert.deepEqual(results[0], results[1], `step ${step}: ${op} ${dir}/${name} as ${cred.uid} (other ${other}/${toName}, how ${how}, mode ${mode.toString(8)})`);
      // Keep the directory list in step with what exists.
      const dirsNow = new Set<string>(['']);
      const walk = async (p: string, n: Buffer): Promise<void> => {
        for (const e of (await memory.readdir(ROOT, n, 0n, 1 << 20, true)).entries) {
          if (e.name === '.' || e.name === '..' || e.attrs?.type !== FileType.DIR) continue;
          const child = p ? `${p}/${e.name}` : e.name;
          dirsNow.add(child);
          await walk(child, e.node!);
        }
      };
      await walk('', await memory.root());
      dirs.clear();
      for (const p of [...dirsNow].sort()) dirs.add(p); // listing order is keyed randomly
    }
  } finally {
    await local.close();
    await fs.rm(base, { recursive: true, force: true });
  }
}
