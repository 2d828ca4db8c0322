// The client verbs of the real CLI (`node dist/src/cli/main.js ls ...`)
// against a tsnfs server on a temp directory: output compared with the
// directory itself, bytes compared by checksum, exit statuses and messages
// as a shell user expects them, and --stats as JSON.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { describeRun, run, type RunResult } from '../peers/proc.js';
import { freePort } from '../peers/ports.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;

let server: RunningServer;
let dir: string; // the export
let state: string;
let local: string; // local side of copies
let q: string; // ?nfsport=..&mountport=..

/** The nfs:// URL of a path inside the export. */
function url(p = ''): string {
  return `nfs://127.0.0.1${dir}${p ? `/${p}` : ''}${q}`;
}

/** How messages name that path (no query). */
function shown(p = ''): string {
  return `nfs://127.0.0.1${dir}${p ? `/${p}` : ''}`;
}

function tsnfs(...args: string[]): Promise<RunResult> {
  return run(process.execPath, [MAIN, ...args], { timeoutMs: 60_000 });
}

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, describeRun(r));
  return r;
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Every path below `root` with what it is: 'dir', 'link:TARGET' or the file's checksum. */
function tree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isSymbolicLink()) out.set(r, `link:${readlinkSync(join(root, r))}`);
      else if (st.isDirectory()) {
        out.set(r, `dir:${(st.mode & 0o777).toString(8)}`);
        walk(r);
      } else out.set(r, `file:${(st.mode & 0o777).toString(8)}:${sha(readFileSync(join(root, r)))}`);
    }
  };
  walk('');
  return out;
}

/** The last line of stderr as JSON (--stats). */
function statsOf(r: RunResult): { nfsOps: Record<string, number>; mountOps: Record<string, number>; bytesWritten: number; bytesRead: number } {
  const lines = r.stderr.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as ReturnType<typeof statsOf>;
}

describe('tsnfs client verbs', { timeout: 300_000 }, () => {
  before(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-cli-export-')));
    state = await mkdtemp(join(tmpdir(), 'tsnfs-cli-state-'));
    local = await realpath(await mkdtemp(join(tmpdir(), 'tsnfs-cli-local-')));
    const exportsFile = join(state, 'exports');
    await writeFile(exportsFile, `${dir} 127.0.0.1(rw,no_root_squash,insecure)\n`);
    server = await startServer({ exportsFile, stateDir: state, host: '127.0.0.1', nfsPort: 0, portmapPort: 0 });
    q = `?version=3&nfsport=${server.nfsPort}&mountport=${server.mountPort}`;

    // A small tree to list.
    await mkdir(join(dir, 'list/sub/deeper'), { recursive: true });
    await writeFile(join(dir, 'list/a.txt'), 'hello\n');
    await writeFile(join(dir, 'list/b.bin'), randomBytes(70_000), { mode: 0o600 });
    await writeFile(join(dir, 'list/.hidden'), 'x');
    await writeFile(join(dir, 'list/sub/c.txt'), 'see');
    await writeFile(join(dir, 'list/sub/deeper/d.txt'), '');
    await symlink('a.txt', join(dir, 'list/link'));
  });

  after(async () => {
    await server?.close();
    for (const d of [dir, state, local]) if (d) await rm(d, { recursive: true, force: true });
  });

  test('ls lists the directory, sorted, without dot files unless -a', async () => {
    const r = ok(await tsnfs('ls', url('list')));
    const names = readdirSync(join(dir, 'list')).filter((n) => !n.startsWith('.')).sort();
    assert.deepEqual(r.stdout.split('\n').filter(Boolean), names);
    const all = ok(await tsnfs('ls', '-a', url('list')));
    assert.deepEqual(all.stdout.split('\n').filter(Boolean), readdirSync(join(dir, 'list')).sort());
    // A file is listed by its name (the URL, as ls prints its argument).
    assert.equal(ok(await tsnfs('ls', url('list/a.txt'))).stdout, `${shown('list/a.txt')}\n`);
  });

  test('ls prints a name that is not UTF-8 as its own bytes', async () => {
    await mkdir(join(dir, 'bytes'));
    const name = Buffer.from('caf\xe9', 'latin1');
    await writeFile(Buffer.concat([Buffer.from(join(dir, 'bytes') + '/'), name]), '');
    assert.deepEqual(ok(await tsnfs('ls', url('bytes'))).stdoutBytes, Buffer.concat([name, Buffer.from('\n')]));
    await rm(join(dir, 'bytes'), { recursive: true });
  });

  test('ls -l: mode, links, owner, size, date and link targets as the directory has them', async () => {
    const r = ok(await tsnfs('ls', '-l', url('list')));
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.match(lines[0]!, /^total \d+$/);
    const rows = lines.slice(1);
    const names = readdirSync(join(dir, 'list')).filter((n) => !n.startsWith('.')).sort();
    assert.equal(rows.length, names.length);
    rows.forEach((line, i) => {
      const m = /^([-dlcbps][-rwxsStT]{9}) +(\d+) +(\d+) +(\d+) +(\d+) ([A-Z][a-z]{2} [ \d]\d (?:\d\d:\d\d| \d{4})) (.*)$/.exec(line);
      assert.ok(m, `an ls -l line: ${line}`);
      const name = names[i]!;
      const st = lstatSync(join(dir, 'list', name));
      const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
      assert.equal(m[1]![0], type, line);
      assert.equal(parseInt(m[1]!.slice(1).replace(/[^-]/g, '1').replace(/-/g, '0'), 2), st.mode & 0o777, `permissions of ${name}`);
      assert.equal(Number(m[2]), st.nlink, `links of ${name}`);
      assert.equal(Number(m[3]), st.uid);
      assert.equal(Number(m[4]), st.gid);
      assert.equal(Number(m[5]), st.size, `size of ${name}`);
      assert.equal(m[7], st.isSymbolicLink() ? `${name} -> ${readlinkSync(join(dir, 'list', name))}` : name);
    });
  });

  test('ls -R: every directory, with its path as a header', async () => {
    const r = ok(await tsnfs('ls', '-R', url('list')));
    const expected: string[] = [];
    const walk = (rel: string): void => {
      const names = readdirSync(join(dir, rel)).filter((n) => !n.startsWith('.')).sort();
      if (expected.length > 0) expected.push('');
      expected.push(`${shown(rel)}:`, ...names);
      for (const n of names) if (lstatSync(join(dir, rel, n)).isDirectory()) walk(`${rel}/${n}`);
    };
    walk('list');
    assert.deepEqual(r.stdout.split('\n').slice(0, -1), expected);
  });

  test('cat writes the exact bytes', async () => {
    const data = randomBytes(3 * MiB + 123);
    await writeFile(join(dir, 'cat.bin'), data);
    const r = ok(await tsnfs('cat', url('cat.bin')));
    assert.equal(r.stdoutBytes.length, data.length);
    assert.equal(sha(r.stdoutBytes), sha(data));
    // Several files, concatenated.
    const two = ok(await tsnfs('cat', url('list/a.txt'), url('list/sub/c.txt')));
    assert.equal(two.stdout, 'hello\nsee');
  });

  test('cp in and out: a few MiB, byte for byte, and committed when cp returns', async () => {
    const data = randomBytes(5 * MiB + 7);
    await writeFile(join(local, 'up.bin'), data);
    ok(await tsnfs('cp', join(local, 'up.bin'), url('up.bin')));
    assert.equal(sha(readFileSync(join(dir, 'up.bin'))), sha(data));
    ok(await tsnfs('cp', url('up.bin'), join(local, 'down.bin')));
    assert.equal(sha(readFileSync(join(local, 'down.bin'))), sha(data));
    // Out of NFS an empty file stays empty, and an existing local file is replaced whole.
    await writeFile(join(dir, 'empty.bin'), '');
    ok(await tsnfs('cp', url('empty.bin'), join(local, 'down.bin')));
    assert.equal(readFileSync(join(local, 'down.bin')).length, 0);
    await rm(join(dir, 'empty.bin'));
    // Into special files, which cannot be synced (fsync says EINVAL): /dev/null, and a FIFO read by another reader.
    ok(await tsnfs('cp', url('up.bin'), '/dev/null'));
    const fifo = join(local, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const chunks: Buffer[] = [];
    const drained = new Promise<void>((resolve, reject) => createReadStream(fifo).on('data', (c) => chunks.push(c as Buffer)).on('end', resolve).on('error', reject));
    ok(await tsnfs('cp', url('up.bin'), fifo));
    await drained;
    assert.equal(sha(Buffer.concat(chunks)), sha(data));
    await rm(fifo);
    // Into an existing directory, by name; and over an existing file.
    ok(await tsnfs('cp', join(local, 'up.bin'), url('list/sub')));
    assert.equal(sha(readFileSync(join(dir, 'list/sub/up.bin'))), sha(data));
    await writeFile(join(local, 'small.txt'), 'short');
    ok(await tsnfs('cp', join(local, 'small.txt'), url('list/sub/up.bin')));
    assert.equal(readFileSync(join(dir, 'list/sub/up.bin'), 'utf8'), 'short');
    await rm(join(dir, 'list/sub/up.bin'));
  });

  test('cp -r copies a tree both ways (files, modes, empty directories, symbolic links)', async () => {
    const src = join(local, 'tree');
    await mkdir(join(src, 'x/y/empty'), { recursive: true });
    await writeFile(join(src, 'top.bin'), randomBytes(2 * MiB));
    await writeFile(join(src, 'x/run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(src, 'x/y/z.txt'), 'zzz');
    await symlink('../top.bin', join(src, 'x/up'));
    ok(await tsnfs('cp', '-r', src, url('tree-in')));
    assert.deepEqual(tree(join(dir, 'tree-in')), tree(src));
    ok(await tsnfs('cp', '-r', url('tree-in'), join(local, 'tree-out')));
    assert.deepEqual(tree(join(local, 'tree-out')), tree(src));
    // A directory without -r is refused, as cp does.
    const r = await tsnfs('cp', url('tree-in'), join(local, 'nope'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: -r not specified; omitting directory '${shown('tree-in')}'\n`);
  });

  test('stat prints the attributes; --json for scripts', async () => {
    const st = statSync(join(dir, 'list/b.bin'));
    const r = ok(await tsnfs('stat', url('list/b.bin')));
    assert.match(r.stdout, new RegExp(`^  File: ${shown('list/b.bin').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
    assert.match(r.stdout, new RegExp(`Size: ${st.size}\\s+Blocks: \\d+\\s+IO Block: \\d+ regular file`));
    assert.match(r.stdout, /Access: \(0600\/-rw-------\)/);
    assert.match(r.stdout, new RegExp(`Inode: ${st.ino} `));
    const j = JSON.parse(ok(await tsnfs('stat', '--json', url('list/link'))).stdout) as Record<string, unknown>;
    assert.equal(j.type, 'symlink');
    assert.equal(j.target, 'a.txt');
    const jl = JSON.parse(ok(await tsnfs('stat', '--json', '-L', url('list/link'))).stdout) as Record<string, unknown>;
    assert.equal(jl.type, 'file');
    assert.equal(jl.size, 6);
  });

  test('mkdir, mkdir -p, rm, rm -r, rm -f', async () => {
    ok(await tsnfs('mkdir', '-p', url('mk/a/b/c')));
    assert.ok(statSync(join(dir, 'mk/a/b/c')).isDirectory());
    ok(await tsnfs('mkdir', '-p', url('mk/a/b/c'))); // exists: fine with -p
    let r = await tsnfs('mkdir', url('mk/a'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot create directory '${shown('mk/a')}': File exists\n`);
    r = await tsnfs('mkdir', url('mk/none/x'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot create directory '${shown('mk/none/x')}': No such file or directory\n`);
    ok(await tsnfs('mkdir', '-m', '700', url('mk/private')));
    assert.equal(statSync(join(dir, 'mk/private')).mode & 0o777, 0o700);

    await writeFile(join(dir, 'mk/a/b/c/f.txt'), 'f');
    r = await tsnfs('rm', url('mk'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot remove '${shown('mk')}': Is a directory\n`);
    ok(await tsnfs('rm', url('mk/a/b/c/f.txt')));
    assert.ok(!existsSync(join(dir, 'mk/a/b/c/f.txt')));
    ok(await tsnfs('rm', '-r', url('mk')));
    assert.ok(!existsSync(join(dir, 'mk')));
    r = await tsnfs('rm', url('mk'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot remove '${shown('mk')}': No such file or directory\n`);
    ok(await tsnfs('rm', '-f', url('mk')));
  });

  test('mv renames on the export, moves into a directory, and moves across to a local path', async () => {
    await writeFile(join(dir, 'mv1.txt'), 'one');
    ok(await tsnfs('mv', url('mv1.txt'), url('mv2.txt')));
    assert.ok(!existsSync(join(dir, 'mv1.txt')));
    assert.equal(readFileSync(join(dir, 'mv2.txt'), 'utf8'), 'one');
    await mkdir(join(dir, 'mvdir'));
    ok(await tsnfs('mv', url('mv2.txt'), url('mvdir')));
    assert.equal(readFileSync(join(dir, 'mvdir/mv2.txt'), 'utf8'), 'one');
    ok(await tsnfs('mv', url('mvdir'), join(local, 'moved')));
    assert.ok(!existsSync(join(dir, 'mvdir')));
    assert.equal(readFileSync(join(local, 'moved/mv2.txt'), 'utf8'), 'one');
    const r = await tsnfs('mv', url('nothing'), url('x'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot stat '${shown('nothing')}': No such file or directory\n`);
  });

  test('df shows the export with its sizes', async () => {
    const r = ok(await tsnfs('df', url()));
    const [head, line] = r.stdout.trim().split('\n');
    assert.match(head!, /^Filesystem +1K-blocks +Used +Available +Use% +URL$/);
    const m = new RegExp(`^127\\.0\\.0\\.1:${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +(\\d+) +(\\d+) +(\\d+) +(\\d+)% +`).exec(line!);
    assert.ok(m, line);
    assert.ok(Number(m[1]) > 0 && Number(m[3]) > 0);
    ok(await tsnfs('df', '-h', url()));
  });

  test('errors: messages and exit statuses as a shell user expects', async () => {
    let r = await tsnfs('stat', url('x'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot stat '${shown('x')}': No such file or directory\n`);
    assert.equal(r.stdout, '');
    r = await tsnfs('ls', url('x'), url('list/sub'));
    assert.equal(r.code, 1, 'one missing argument fails the command');
    assert.equal(r.stderr, `tsnfs: cannot access '${shown('x')}': No such file or directory\n`);
    assert.match(r.stdout, /c\.txt/, 'the other argument is still listed');
    r = await tsnfs('cat', url('list'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tsnfs: .*'.*\/list': Is a directory\n$/);
    // Usage mistakes: exit 2.
    for (const args of [['ls'], ['ls', '--bogus', url()], ['cp', url('list/a.txt')], ['ls', local], ['ls', `${url()}&nosuchoption=1`], ['frobnicate']]) {
      r = await tsnfs(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${describeRun(r)}`);
      assert.ok(r.stderr.length > 0);
    }
    // Nothing listening: exit 1, and why.
    const port = await freePort();
    r = await tsnfs('ls', `nfs://127.0.0.1${dir}?nfsport=${port}&mountport=${port}`);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tsnfs: cannot access 'nfs://127.0.0.1${dir}': Connection refused (127.0.0.1:${port})\n`);
    // Help and version: exit 0.
    ok(await tsnfs('--help'));
    ok(await tsnfs('cp', '--help'));
    ok(await tsnfs('--version'));
  });

  test('--stats prints the client counters as one JSON object on stderr', async () => {
    const ls = statsOf(ok(await tsnfs('ls', '-l', '--stats', url('list'))));
    assert.ok(ls.nfsOps.READDIRPLUS! > 0);
    assert.ok(ls.mountOps.MNT! > 0);
    // File data over RPC (localio=0): the server is on this host, and LOCALIO would bypass READ and WRITE.
    const cat = statsOf(ok(await tsnfs('cat', '--stats', `${url('cat.bin')}&localio=0`)));
    assert.ok(cat.nfsOps.READ! > 0);
    assert.ok(cat.bytesRead >= 3 * MiB);
    const cp = statsOf(ok(await tsnfs('cp', '--stats', join(local, 'up.bin'), `${url('stats.bin')}&localio=0`)));
    assert.ok(cp.nfsOps.WRITE! > 0);
    assert.ok(cp.nfsOps.COMMIT! > 0, 'cp commits what it wrote');
    assert.ok(cp.nfsOps.CREATE! > 0);
    assert.equal(cp.bytesWritten, 5 * MiB + 7);
    for (const verb of [['stat', url('list/a.txt')], ['df', url()], ['mkdir', url('statsdir')], ['rm', '-r', url('statsdir')]]) {
      const r = ok(await tsnfs(verb[0]!, '--stats', ...verb.slice(1)));
      const s = statsOf(r);
      assert.ok(Object.values(s.nfsOps).some((n) => n > 0), `${verb[0]}: NFS calls counted`);
    }
    // Failures print them too.
    const failed = await tsnfs('stat', '--stats', url('nope'));
    assert.equal(failed.code, 1);
    assert.ok(statsOf(failed).nfsOps.LOOKUP! > 0);
  });

  test('doctor reports node, the native addon, the state dir and ports', async () => {
    const r = ok(await tsnfs('doctor'));
    assert.match(r.stdout, new RegExp(`^node: ${process.version.replace(/\./g, '\\.')}`, 'm'));
    assert.match(r.stdout, /^native addon: /m);
    assert.match(r.stdout, /^state dir: /m);
    assert.match(r.stdout, /^ports on 127\.0\.0\.1/m);
  });
});
