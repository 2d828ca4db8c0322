// The client's parts on their own: URL parsing, byte ranges, the dirty
// accountant, the attribute and lookup caches, error mapping, open flags,
// the WRITE encoder and the typing of protocol calls.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdrWriter } from '../../src/xdr/index.js';
import { encodeWRITE3args, NFS_V3_TABLE, nfsstat3, type fattr3 } from '../../src/proto/nfs3.gen.js';
import { MOUNT_V3_TABLE } from '../../src/proto/mount3.gen.js';
import { parseNfsUrl, formatNfsUrl } from '../../src/client/url.js';
import { RangeSet } from '../../src/client/ranges.js';
import { DirtyAccountant } from '../../src/client/dirty.js';
import { AttrCache } from '../../src/client/attr-cache.js';
import { dirStamp, LookupCache } from '../../src/client/lookup-cache.js';
import { codeOfNfsStat, NfsError, NfsStatusError, toNfsError } from '../../src/client/errors.js';
import { parseOpenFlags } from '../../src/client/file.js';
import { encodeWriteArgs } from '../../src/client/transport.js';
import { pathComponents, optionsFromUrl } from '../../src/client/index.js';
import type { ArgsOf, ResOf } from '../../src/client/program.js';
import { RpcTimeoutError } from '../../src/rpc/index.js';
import { rng } from '../fs/suite.js';

describe('parseNfsUrl', () => {
  test('libnfs format with ports, credentials and read-ahead', () => {
    const u = parseNfsUrl('nfs://10.0.0.1/srv/export/dir?version=3&nfsport=2049&mountport=20048&uid=1000&gid=100&readahead=1048576');
    assert.equal(u.host, '10.0.0.1');
    assert.equal(u.path, '/srv/export/dir');
    assert.equal(u.nfsPort, 2049);
    assert.equal(u.mountPort, 20048);
    assert.equal(u.uid, 1000);
    assert.equal(u.gid, 100);
    assert.equal(u.readahead, 1048576);
    const o = optionsFromUrl(u);
    assert.deepEqual([o.host, o.path, o.nfsPort, o.mountPort, o.uid, o.gid, o.readahead], ['10.0.0.1', '/srv/export/dir', 2049, 20048, 1000, 100, 1048576]);
  });

  test('authority port, IPv6, no path, user part', () => {
    assert.equal(parseNfsUrl('nfs://server:2050/x').nfsPort, 2050);
    const v6 = parseNfsUrl('nfs://[::1]:2049/e');
    assert.equal(v6.host, '::1');
    assert.equal(v6.nfsPort, 2049);
    assert.equal(parseNfsUrl('nfs://host').path, '/');
    assert.equal(parseNfsUrl('nfs://me@host/e').host, 'host');
  });

  test('libnfs arguments that change nothing are accepted; tsnfs ones are read', () => {
    const u = parseNfsUrl('nfs://h/e?pagecache=1&debug=2&auto-traverse-mounts=0&autoreconnect=-1&dircache=0&soft&timeo=50&acregmin=1&actimeo=7');
    assert.equal(u.lookupCache, false);
    assert.equal(u.soft, true);
    assert.equal(u.timeoMs, 5000);
    assert.equal(u.acregmin, 7); // actimeo comes later and sets all four
    assert.equal(u.acdirmax, 7);
    assert.equal(parseNfsUrl('nfs://h/e?noac').acregmax, 0);
  });

  test('errors: scheme, version, unknown argument, bad numbers', () => {
    assert.throws(() => parseNfsUrl('http://h/e'), TypeError);
    assert.throws(() => parseNfsUrl('nfs:///e'), /without a host/);
    assert.throws(() => parseNfsUrl('nfs://h/e?version=4'), /only NFSv3/);
    assert.throws(() => parseNfsUrl('nfs://h/e?nfsprot=1'), /unknown argument nfsprot/);
    assert.throws(() => parseNfsUrl('nfs://h/e?nfsport=x'), /not a non-negative integer/);
    assert.throws(() => parseNfsUrl('nfs://h/e?mountport=70000'), /out of range/);
    assert.throws(() => parseNfsUrl('nfs://h/e?sec=krb5'), /AUTH_SYS/);
  });

  test('formatNfsUrl round-trips', () => {
    const s = formatNfsUrl({ host: '::1', path: '/a/b', nfsPort: 1, mountPort: 2, uid: 3, gid: 4 });
    assert.equal(s, 'nfs://[::1]/a/b?version=3&nfsport=1&mountport=2&uid=3&gid=4');
    const u = parseNfsUrl(s);
    assert.deepEqual([u.host, u.path, u.nfsPort, u.mountPort, u.uid, u.gid], ['::1', '/a/b', 1, 2, 3, 4]);
  });
});

describe('pathComponents', () => {
  test('POSIX style, relative to the mount, never above it', () => {
    assert.deepEqual(pathComponents('a/b'), ['a', 'b']);
    assert.deepEqual(pathComponents('/a//b/'), ['a', 'b']);
    assert.deepEqual(pathComponents('./a/./b'), ['a', 'b']);
    assert.deepEqual(pathComponents('a/../../b'), ['b']);
    assert.deepEqual(pathComponents(''), []);
    assert.deepEqual(pathComponents('.'), []);
    assert.throws(() => pathComponents('a\0b'), (e: NfsError) => e.code === 'EINVAL');
  });
});

describe('RangeSet', () => {
  test('matches a bitmap under random adds and removes', () => {
    const next = rng(42);
    const N = 600;
    for (let round = 0; round < 30; round++) {
      const set = new RangeSet();
      const bits = new Uint8Array(N);
      for (let op = 0; op < 60; op++) {
        const s = Math.floor(next() * N);
        const e = Math.min(N, s + Math.floor(next() * 80));
        if (next() < 0.6) {
          set.add(s, e);
          bits.fill(1, s, e);
        } else {
          set.remove(s, e);
          bits.fill(0, s, e);
        }
        // Same ranges, disjoint and non-adjacent.
        const expect: Array<[number, number]> = [];
        for (let i = 0; i < N; i++) {
          if (bits[i] && (i === 0 || !bits[i - 1])) expect.push([i, i]);
          if (bits[i]) expect[expect.length - 1]![1] = i + 1;
        }
        assert.deepEqual([...set], expect);
        assert.equal(set.size, bits.reduce((a, b) => a + b, 0));
        const qs = Math.floor(next() * N);
        const qe = Math.min(N, qs + 1 + Math.floor(next() * 50));
        const some = bits.subarray(qs, qe).some((b) => b === 1);
        const all = bits.subarray(qs, qe).every((b) => b === 1);
        assert.equal(set.intersects(qs, qe), some);
        assert.equal(set.covers(qs, qe), all);
        const first = set.firstIn(qs, qe);
        if (!some) assert.equal(first, undefined);
        else assert.equal(first![0], qs + bits.subarray(qs, qe).indexOf(1));
      }
    }
  });

  test('touching ranges merge; maxEnd; overlapping is clipped', () => {
    const r = new RangeSet();
    r.add(0, 10);
    r.add(10, 20);
    r.add(30, 40);
    assert.deepEqual([...r], [[0, 20], [30, 40]]);
    assert.equal(r.maxEnd, 40);
    assert.deepEqual(r.overlapping(15, 35), [[15, 20], [30, 35]]);
    r.remove(5, 35);
    assert.deepEqual([...r], [[0, 5], [35, 40]]);
  });
});

describe('DirtyAccountant', () => {
  test('writers wait at the hard limit and are served first come first served', async () => {
    const a = new DirtyAccountant({ hard: 100, background: 50 });
    let pressure = 0;
    a.onPressure(() => pressure++);
    await a.reserve(60);
    await a.reserve(40);
    assert.equal(a.used, 100);
    const order: string[] = [];
    const big = a.reserve(50).then(() => order.push('big'));
    const small = a.reserve(10).then(() => order.push('small'));
    // A small request that would fit must not pass the queued large one.
    a.release(20);
    await Promise.resolve();
    assert.equal(a.tryReserve(5), false, 'no barging while writers wait');
    assert.deepEqual(order, []);
    a.release(40); // 40 used: big (50) fits, then small (10): 100
    await Promise.all([big, small]);
    assert.deepEqual(order, ['big', 'small']);
    assert.equal(a.used, 100);
    assert.ok(a.peak <= 100);
    assert.equal(a.throttled, 2);
    await new Promise((r) => setImmediate(r));
    assert.ok(pressure > 0, 'flushers were told');
  });

  test('a request larger than the limit passes alone', async () => {
    const a = new DirtyAccountant({ hard: 10 });
    await a.reserve(25);
    assert.equal(a.used, 25);
    const next = a.reserve(1);
    let done = false;
    void next.then(() => (done = true));
    await Promise.resolve();
    assert.equal(done, false);
    a.release(25);
    await next;
    assert.equal(a.used, 1);
  });
});

function attrs(mtime: number, size = 0n, type: 1 | 2 = 1): fattr3 {
  const t = { seconds: mtime, nseconds: 0 };
  return { type, mode: 0o644, nlink: 1, uid: 0, gid: 0, size, used: size, rdev: { specdata1: 0, specdata2: 0 }, fsid: 1n, fileid: 5n, atime: t, mtime: t, ctime: t };
}

describe('AttrCache', () => {
  test('timeouts per type, growing while nothing changes, reset by a change', () => {
    const c = new AttrCache({ acregmin: 3, acregmax: 60, acdirmin: 30, acdirmax: 60 });
    let now = 1_000_000;
    c.update('f', attrs(1), now);
    c.update('d', attrs(1, 0n, 2), now);
    assert.equal(c.timeoutOf('f'), 3000);
    assert.equal(c.timeoutOf('d'), 30_000);
    assert.ok(c.get('f', now + 2999));
    assert.equal(c.get('f', now + 3000), undefined);
    // Unchanged each time the timeout runs out: 3 -> 6 -> 12 -> 24 -> 48 -> 60 s.
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      now += c.timeoutOf('f')!;
      c.update('f', attrs(1), now);
      seen.push(c.timeoutOf('f')! / 1000);
    }
    assert.deepEqual(seen, [6, 12, 24, 48, 60, 60]);
    // A change: back to the minimum.
    now += 1000;
    assert.equal(c.update('f', attrs(2), now), true);
    assert.equal(c.timeoutOf('f'), 3000);
    assert.equal(c.hits, 1);
    assert.equal(c.misses, 1);
  });

  test('noac: nothing is trusted', () => {
    const c = new AttrCache({ acregmin: 0, acregmax: 0, acdirmin: 0, acdirmax: 0 });
    c.update('f', attrs(1), 10);
    assert.equal(c.get('f', 10), undefined);
    c.update('f', attrs(1), 20_000);
    assert.equal(c.get('f', 20_000), undefined);
  });
});

describe('LookupCache', () => {
  test('entries live while the directory keeps its stamp; our own changes move them along', () => {
    const c = new LookupCache();
    const s1 = dirStamp(attrs(1, 0n, 2));
    const s2 = dirStamp(attrs(2, 0n, 2));
    const s3 = dirStamp(attrs(3, 0n, 2));
    const fh = { data: Buffer.from('x') };
    c.set('d', s1, 'a', fh);
    c.set('d', s1, 'gone', null);
    assert.deepEqual(c.get('d', s1, 'a'), { fh });
    assert.deepEqual(c.get('d', s1, 'gone'), { fh: null });
    assert.equal(c.get('d', s1, 'other'), undefined);
    c.dirChanged('d', s1, s2); // our CREATE: entries stay
    assert.deepEqual(c.get('d', s2, 'a'), { fh });
    c.dirChanged('d', s1, s3); // someone else changed it too
    assert.equal(c.get('d', s3, 'a'), undefined);
    c.set('d', s3, 'a', fh);
    assert.equal(c.get('d', s2, 'a'), undefined, 'another stamp drops the directory');
    assert.equal(c.hits, 2);
    assert.equal(c.negativeHits, 1);
  });
});

describe('errors', () => {
  test('nfsstat3 -> Node-style errors', () => {
    const pairs: Array<[number, string]> = [
      [nfsstat3.NFS3ERR_NOENT, 'ENOENT'],
      [nfsstat3.NFS3ERR_ACCES, 'EACCES'],
      [nfsstat3.NFS3ERR_NOSPC, 'ENOSPC'],
      [nfsstat3.NFS3ERR_STALE, 'ESTALE'],
      [nfsstat3.NFS3ERR_EXIST, 'EEXIST'],
      [nfsstat3.NFS3ERR_NOTDIR, 'ENOTDIR'],
      [nfsstat3.NFS3ERR_ISDIR, 'EISDIR'],
      [nfsstat3.NFS3ERR_NOTEMPTY, 'ENOTEMPTY'],
      [nfsstat3.NFS3ERR_ROFS, 'EROFS'],
      [nfsstat3.NFS3ERR_DQUOT, 'EDQUOT'],
      [nfsstat3.NFS3ERR_FBIG, 'EFBIG'],
      [nfsstat3.NFS3ERR_NAMETOOLONG, 'ENAMETOOLONG'],
      [nfsstat3.NFS3ERR_XDEV, 'EXDEV'],
      [nfsstat3.NFS3ERR_INVAL, 'EINVAL'],
      [nfsstat3.NFS3ERR_IO, 'EIO'],
      [nfsstat3.NFS3ERR_PERM, 'EPERM'],
    ];
    for (const [st, code] of pairs) assert.equal(codeOfNfsStat(st), code);
    const e = toNfsError(new NfsStatusError(nfsstat3.NFS3ERR_NOENT, 'LOOKUP'), 'open', 'a/b');
    assert.ok(e instanceof NfsError && e instanceof Error);
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, -2);
    assert.equal(e.syscall, 'open');
    assert.equal(e.path, 'a/b');
    assert.equal(e.nfsStatus, 2);
    assert.equal(e.message, "ENOENT: no such file or directory, open 'a/b'");
    const t = toNfsError(new RpcTimeoutError(5), 'read', 'x');
    assert.equal(t.code, 'ETIMEDOUT');
    assert.ok(t.errno < 0);
    assert.equal(toNfsError(new NfsStatusError(nfsstat3.NFS3ERR_DQUOT, 'WRITE'), 'close').errno, -122);
  });
});

describe('parseOpenFlags', () => {
  test('Node flag strings and numbers', () => {
    const f = (s: string | number) => {
      const m = parseOpenFlags(s);
      return `${m.read ? 'r' : '-'}${m.write ? 'w' : '-'}${m.create ? 'c' : '-'}${m.exclusive ? 'x' : '-'}${m.truncate ? 't' : '-'}${m.append ? 'a' : '-'}`;
    };
    assert.equal(f('r'), 'r-----');
    assert.equal(f('r+'), 'rw----');
    assert.equal(f('rs+'), 'rw----');
    assert.equal(f('w'), '-wc-t-');
    assert.equal(f('wx'), '-wcxt-');
    assert.equal(f('xw+'), 'rwcxt-');
    assert.equal(f('a'), '-wc--a');
    assert.equal(f('a+'), 'rwc--a');
    assert.equal(f(0o1101), '-wc-t-'); // O_WRONLY|O_CREAT|O_TRUNC
    assert.throws(() => parseOpenFlags('rx'), TypeError);
    assert.throws(() => parseOpenFlags('q'), TypeError);
  });
});

describe('WRITE encoder', () => {
  test('several buffers encode exactly as one WRITE3args of their concatenation', () => {
    const next = rng(7);
    const fh = { data: Buffer.from('0123456789abcdef') };
    for (let round = 0; round < 200; round++) {
      const pieces: Buffer[] = [];
      const n = 1 + Math.floor(next() * 5);
      for (let i = 0; i < n; i++) {
        const len = Math.floor(next() * (next() < 0.3 ? 3000 : 9));
        const b = Buffer.alloc(len);
        for (let j = 0; j < len; j++) b[j] = Math.floor(next() * 256);
        pieces.push(b);
      }
      const all = Buffer.concat(pieces);
      const a = new XdrWriter();
      encodeWriteArgs(a, fh, 12345, pieces, all.length, 0);
      // The expected bytes, built by hand: the arguments before the data
      // (encodeWRITE3args with no data), the length, the data, zero padding.
      const head = new XdrWriter();
      encodeWRITE3args(head, { file: fh, offset: 12345n, count: all.length, stable: 0, data: Buffer.alloc(0) });
      const h = head.toBuffer();
      const len = Buffer.alloc(4);
      len.writeUInt32BE(all.length);
      const expected = Buffer.concat([h.subarray(0, h.length - 4), len, all, Buffer.alloc((4 - (all.length % 4)) % 4)]);
      assert.deepEqual(a.toBuffer(), expected);
    }
  });

  test('large pieces are sent by reference, not copied', () => {
    const page = Buffer.alloc(64 * 1024, 7);
    const w = new XdrWriter();
    encodeWriteArgs(w, { data: Buffer.alloc(8) }, 0, [page, page], page.length * 2, 0);
    const chunks = w.chunksList();
    assert.equal(chunks.filter((c) => c.buffer === page.buffer && c.length === page.length).length, 2);
  });
});

describe('typed calls', () => {
  test('argument and result types follow the procedure name', () => {
    // Compile-time checks: these assignments only type-check if inference works.
    const read: ArgsOf<typeof NFS_V3_TABLE, 'READ'> = { file: { data: Buffer.alloc(0) }, offset: 0n, count: 1 };
    const mnt: ArgsOf<typeof MOUNT_V3_TABLE, 'MNT'> = '/export';
    const res = { status: 0, resok: { file_attributes: undefined, count: 0, eof: true, data: Buffer.alloc(0) } } satisfies ResOf<typeof NFS_V3_TABLE, 'READ'>;
    // @ts-expect-error a READ takes a file handle, not a path
    const wrong: ArgsOf<typeof NFS_V3_TABLE, 'READ'> = { file: 'x', offset: 0n, count: 1 };
    assert.ok(read && mnt && res && wrong);
  });
});
