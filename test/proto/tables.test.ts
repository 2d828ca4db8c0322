// The program/version tables: numbers, names, codecs, and that their types
// are precise enough for a generic dispatcher and typed handlers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localio, mount3, nfs3, portmap, type ProcArgs, type ProcedureNamed, type ProcRes, type VersionHandlers, type VersionTable } from '../../src/proto/index.js';
import { XdrReader, XdrWriter } from '../../src/xdr/index.js';
import { bytes, decode, encode, hex } from './helpers.js';

const TABLES: VersionTable[] = [
  nfs3.NFS_V3_TABLE,
  mount3.MOUNT_V3_TABLE,
  portmap.PMAP_VERS_TABLE,
  portmap.RPCBVERS_TABLE,
  portmap.RPCBVERS4_TABLE,
  localio.LOCALIO_V1_TABLE,
];

test('program and version numbers', () => {
  assert.equal(nfs3.NFS_PROGRAM, 100003);
  assert.equal(nfs3.NFS_V3, 3);
  assert.equal(mount3.MOUNT_PROGRAM, 100005);
  assert.equal(mount3.MOUNT_V3, 3);
  assert.equal(portmap.PMAP_PROG, 100000);
  assert.equal(portmap.PMAP_VERS, 2);
  assert.equal(portmap.RPCBPROG, 100000);
  assert.equal(portmap.RPCBVERS, 3);
  assert.equal(portmap.RPCBVERS4, 4);
  assert.equal(localio.LOCALIO_PROGRAM, 400122);
  assert.equal(localio.LOCALIO_V1, 1);
  assert.deepEqual(
    TABLES.map((t) => [t.prog, t.vers]),
    [[100003, 3], [100005, 3], [100000, 2], [100000, 3], [100000, 4], [400122, 1]],
  );
});

test('NFSPROC3 lists all 22 procedures, and the table agrees with it', () => {
  const names = Object.keys(nfs3.NFSPROC3);
  assert.equal(names.length, 22);
  assert.deepEqual(Object.values(nfs3.NFSPROC3), Array.from({ length: 22 }, (_, i) => i));
  for (const [name, num] of Object.entries(nfs3.NFSPROC3)) {
    const p = nfs3.NFS_V3_TABLE.procedures[num as keyof typeof nfs3.NFS_V3_TABLE.procedures];
    assert.equal(p.name, name);
    assert.equal(p.proc, num);
  }
  assert.equal(nfs3.NFSPROC3.READDIRPLUS, 17);
  assert.equal(mount3.MOUNTPROC3.EXPORT, 5);
  assert.equal(portmap.PMAPPROC.CALLIT, 5);
  assert.equal(portmap.RPCBPROC3.TADDR2UADDR, 8);
  assert.equal(portmap.RPCBPROC4.GETSTAT, 12);
  assert.equal(localio.LOCALIOPROC.UUID_IS_LOCAL, 1);
});

test('every table entry is keyed by its own number and has all four codecs', () => {
  for (const t of TABLES) {
    for (const [key, p] of Object.entries(t.procedures)) {
      assert.equal(Number(key), p.proc, `${t.version} ${p.name}`);
      for (const f of [p.encodeArgs, p.decodeArgs, p.encodeRes, p.decodeRes]) assert.equal(typeof f, 'function');
    }
    assert.equal(t.procedures[0]?.name, 'NULL', `${t.version} has NULL`);
  }
});

test('void arguments and results take no bytes', () => {
  const nul = nfs3.NFS_V3_TABLE.procedures[0];
  const w = new XdrWriter();
  nul.encodeArgs(w, undefined);
  nul.encodeRes(w, undefined);
  assert.equal(w.length, 0);
  const r = new XdrReader(Buffer.alloc(0));
  assert.equal(nul.decodeArgs(r), undefined);
  r.done();
});

test('built-in result types (bool, unsigned int, string) have inline codecs', () => {
  const set = portmap.PMAP_VERS_TABLE.procedures[portmap.PMAPPROC.SET];
  assert.deepEqual(encode(set.encodeRes, true), hex('00000001'));
  assert.equal(decode(set.decodeRes, hex('00000000')), false);
  const getport = portmap.PMAP_VERS_TABLE.procedures[portmap.PMAPPROC.GETPORT];
  assert.deepEqual(encode(getport.encodeRes, 2049), hex('00000801'));
  const getaddr = portmap.RPCBVERS4_TABLE.procedures[portmap.RPCBPROC4.GETADDR];
  assert.deepEqual(encode(getaddr.encodeRes, '127.0.0.1.8.1'), hex('0000000d 3132372e302e302e312e382e31000000'));
  assert.equal(decode(getaddr.decodeRes, hex('00000000')), '');
  const uaddr = portmap.RPCBVERS_TABLE.procedures[portmap.RPCBPROC3.UADDR2TADDR];
  assert.equal(decode(uaddr.decodeArgs, encode(uaddr.encodeArgs, '::1.8.1')), '::1.8.1');
});

// A generic dispatcher over any table, as an RPC server would write it.
async function dispatch<T extends VersionTable, C>(table: T, handlers: VersionHandlers<T, C>, proc: number, args: Buffer, ctx: C): Promise<Buffer> {
  const p = table.procedures[proc];
  if (!p) throw new Error('PROC_UNAVAIL');
  const handler = (handlers as Record<string, (args: unknown, ctx: C) => unknown>)[p.name];
  if (!handler) throw new Error(`no handler for ${p.name}`);
  const r = new XdrReader(args);
  const decoded = p.decodeArgs(r);
  r.done();
  const w = new XdrWriter();
  p.encodeRes(w, await handler(decoded, ctx));
  return w.toBuffer();
}

test('typed handlers keyed by procedure name, and a generic dispatcher', async () => {
  interface Ctx {
    uid: number;
  }
  const seen: string[] = [];
  const handlers: VersionHandlers<typeof mount3.MOUNT_V3_TABLE, Ctx> = {
    NULL() {},
    MNT(path, ctx) {
      seen.push(`${path} as ${ctx.uid}`);
      if (path !== '/srv') return { fhs_status: mount3.mountstat3.MNT3ERR_NOENT };
      return { fhs_status: mount3.mountstat3.MNT3_OK, mountinfo: { fhandle: bytes(8), auth_flavors: [1] } };
    },
    DUMP: () => [],
    UMNT() {},
    UMNTALL() {},
    EXPORT: async () => [{ ex_dir: '/srv', ex_groups: [] }],
  };
  const mnt = mount3.MOUNT_V3_TABLE.procedures[mount3.MOUNTPROC3.MNT];
  const reply = await dispatch(mount3.MOUNT_V3_TABLE, handlers, mount3.MOUNTPROC3.MNT, encode(mnt.encodeArgs, '/srv'), { uid: 7 });
  const res = decode(mnt.decodeRes, reply);
  assert.equal(res.fhs_status, mount3.mountstat3.MNT3_OK);
  if (res.fhs_status === mount3.mountstat3.MNT3_OK) assert.deepEqual(res.mountinfo.auth_flavors, [1]);
  assert.deepEqual(seen, ['/srv as 7']);
  const exp = await dispatch(mount3.MOUNT_V3_TABLE, handlers, mount3.MOUNTPROC3.EXPORT, Buffer.alloc(0), { uid: 0 });
  assert.deepEqual(decode(mount3.MOUNT_V3_TABLE.procedures[5].decodeRes, exp), [{ ex_dir: '/srv', ex_groups: [] }]);
  await assert.rejects(dispatch(mount3.MOUNT_V3_TABLE, handlers, 6, Buffer.alloc(0), { uid: 0 }), /PROC_UNAVAIL/);
});

test('argument and result types can be named from the table', () => {
  type Read = ProcedureNamed<typeof nfs3.NFS_V3_TABLE, 'READ'>;
  const args: ProcArgs<Read> = { file: { data: bytes(4) }, offset: 0n, count: 10 };
  const res: ProcRes<Read> = { status: nfs3.nfsstat3.NFS3ERR_ACCES, resfail: { file_attributes: undefined } };
  const p: Read = nfs3.NFS_V3_TABLE.procedures[nfs3.NFSPROC3.READ];
  assert.deepEqual(decode(p.decodeArgs, encode(p.encodeArgs, args)), args);
  assert.deepEqual(decode(p.decodeRes, encode(p.encodeRes, res)), res);
});
