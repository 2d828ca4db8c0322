// Round trips (encode, decode, compare) of representative types of every
// protocol: structs, unions with and without default arms, bool unions that
// became optional values, linked lists, fixed and variable opaques.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localio, mount3, nfs3, portmap } from '../../src/proto/index.js';
import { bytes, decode, encode, roundTrip } from './helpers.js';

const { nfsstat3, ftype3, time_how, createmode3, stable_how } = nfs3;

const fh = (n: number): nfs3.nfs_fh3 => ({ data: bytes(n, n) });

const attrs: nfs3.fattr3 = {
  type: ftype3.NF3REG,
  mode: 0o100644,
  nlink: 1,
  uid: 1000,
  gid: 1000,
  size: 0x1_0000_0001n, // past 32 bits
  used: 8192n,
  rdev: { specdata1: 0, specdata2: 0 },
  fsid: 0xffff_ffff_ffff_ffffn, // largest unsigned hyper
  fileid: 42n,
  atime: { seconds: 1_700_000_000, nseconds: 1 },
  mtime: { seconds: 0xffff_ffff, nseconds: 999_999_999 },
  ctime: { seconds: 0, nseconds: 0 },
};

const wcc: nfs3.wcc_data = {
  before: { size: 10n, mtime: { seconds: 1, nseconds: 2 }, ctime: { seconds: 3, nseconds: 4 } },
  after: attrs,
};

const noSattr: nfs3.sattr3 = {
  mode: undefined,
  uid: undefined,
  gid: undefined,
  size: undefined,
  atime: { set_it: time_how.DONT_CHANGE },
  mtime: { set_it: time_how.DONT_CHANGE },
};

test('nfs3: fattr3 and the optional attribute unions', () => {
  roundTrip(nfs3.encodefattr3, nfs3.decodefattr3, attrs);
  roundTrip(nfs3.encodepost_op_attr, nfs3.decodepost_op_attr, attrs);
  roundTrip(nfs3.encodepost_op_attr, nfs3.decodepost_op_attr, undefined);
  roundTrip(nfs3.encodewcc_data, nfs3.decodewcc_data, wcc);
  roundTrip(nfs3.encodewcc_data, nfs3.decodewcc_data, { before: undefined, after: undefined });
  roundTrip(nfs3.encodepost_op_fh3, nfs3.decodepost_op_fh3, fh(64));
  roundTrip(nfs3.encodepost_op_fh3, nfs3.decodepost_op_fh3, undefined);
});

test('nfs3: every arm of the GETATTR and LOOKUP results', () => {
  roundTrip(nfs3.encodeGETATTR3res, nfs3.decodeGETATTR3res, { status: nfsstat3.NFS3_OK, resok: { obj_attributes: attrs } });
  // GETATTR3res has a void default arm: only the status travels.
  const stale = roundTrip(nfs3.encodeGETATTR3res, nfs3.decodeGETATTR3res, { status: nfsstat3.NFS3ERR_STALE });
  assert.equal(stale.length, 4);
  roundTrip(nfs3.encodeLOOKUP3res, nfs3.decodeLOOKUP3res, {
    status: nfsstat3.NFS3_OK,
    resok: { object: fh(28), obj_attributes: attrs, dir_attributes: undefined },
  });
  roundTrip(nfs3.encodeLOOKUP3res, nfs3.decodeLOOKUP3res, { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_attributes: attrs } });
  roundTrip(nfs3.encodeLOOKUP3args, nfs3.decodeLOOKUP3args, { what: { dir: fh(3), name: 'h\u00e9llo \u{1F600}' } });
});

test('nfs3: SETATTR with sattr3 set_* unions and the guard', () => {
  const sattr: nfs3.sattr3 = {
    mode: 0o755,
    uid: undefined,
    gid: 0,
    size: 0n,
    atime: { set_it: time_how.SET_TO_CLIENT_TIME, atime: { seconds: 5, nseconds: 6 } },
    mtime: { set_it: time_how.SET_TO_SERVER_TIME },
  };
  roundTrip(nfs3.encodeSETATTR3args, nfs3.decodeSETATTR3args, { object: fh(8), new_attributes: sattr, guard: { seconds: 7, nseconds: 8 } });
  roundTrip(nfs3.encodeSETATTR3args, nfs3.decodeSETATTR3args, { object: fh(8), new_attributes: noSattr, guard: undefined });
  roundTrip(nfs3.encodeSETATTR3res, nfs3.decodeSETATTR3res, { status: nfsstat3.NFS3ERR_NOT_SYNC, resfail: { obj_wcc: wcc } });
});

test('nfs3: READ and WRITE carry their data as Buffers (large ones too)', () => {
  const data = bytes(70_000);
  const readOk: nfs3.READ3res = { status: nfsstat3.NFS3_OK, resok: { file_attributes: attrs, count: data.length, eof: true, data } };
  roundTrip(nfs3.encodeREAD3res, nfs3.decodeREAD3res, readOk);
  roundTrip(nfs3.encodeREAD3res, nfs3.decodeREAD3res, { status: nfsstat3.NFS3_OK, resok: { file_attributes: undefined, count: 3, eof: false, data: bytes(3) } });
  roundTrip(nfs3.encodeREAD3res, nfs3.decodeREAD3res, { status: nfsstat3.NFS3ERR_IO, resfail: { file_attributes: undefined } });
  roundTrip(nfs3.encodeREAD3args, nfs3.decodeREAD3args, { file: fh(32), offset: 1n << 40n, count: 1 << 20 });
  roundTrip(nfs3.encodeWRITE3args, nfs3.decodeWRITE3args, { file: fh(32), offset: 0n, count: 5, stable: stable_how.FILE_SYNC, data: bytes(5) });
  roundTrip(nfs3.encodeWRITE3res, nfs3.decodeWRITE3res, {
    status: nfsstat3.NFS3_OK,
    resok: { file_wcc: wcc, count: 5, committed: stable_how.DATA_SYNC, verf: bytes(8) },
  });
  roundTrip(nfs3.encodeCOMMIT3res, nfs3.decodeCOMMIT3res, { status: nfsstat3.NFS3_OK, resok: { file_wcc: wcc, verf: bytes(8, 9) } });
});

test('nfs3: decoded opaques are views of the input, not copies', () => {
  const data = bytes(4096);
  const buf = encode(nfs3.encodeWRITE3args, { file: fh(16), offset: 0n, count: data.length, stable: stable_how.UNSTABLE, data });
  const args = decode(nfs3.decodeWRITE3args, buf);
  assert.equal(args.data.buffer, buf.buffer);
  assert.equal(args.file.data.buffer, buf.buffer);
});

test('nfs3: createhow3 (fall-through cases), MKNOD unions, SYMLINK', () => {
  const where = { dir: fh(12), name: 'f' };
  const hows: nfs3.createhow3[] = [
    { mode: createmode3.UNCHECKED, obj_attributes: noSattr },
    { mode: createmode3.GUARDED, obj_attributes: { ...noSattr, mode: 0o600 } },
    { mode: createmode3.EXCLUSIVE, verf: bytes(8, 3) },
  ];
  for (const how of hows) roundTrip(nfs3.encodeCREATE3args, nfs3.decodeCREATE3args, { where, how });
  roundTrip(nfs3.encodeCREATE3res, nfs3.decodeCREATE3res, {
    status: nfsstat3.NFS3_OK,
    resok: { obj: fh(20), obj_attributes: attrs, dir_wcc: wcc },
  });
  const whats: nfs3.mknoddata3[] = [
    { type: ftype3.NF3CHR, device: { dev_attributes: noSattr, spec: { specdata1: 1, specdata2: 3 } } },
    { type: ftype3.NF3BLK, device: { dev_attributes: noSattr, spec: { specdata1: 8, specdata2: 0 } } },
    { type: ftype3.NF3FIFO, pipe_attributes: noSattr },
    { type: ftype3.NF3SOCK, pipe_attributes: noSattr },
    { type: ftype3.NF3REG }, // the void default arm
  ];
  for (const what of whats) roundTrip(nfs3.encodeMKNOD3args, nfs3.decodeMKNOD3args, { where, what });
  roundTrip(nfs3.encodeSYMLINK3args, nfs3.decodeSYMLINK3args, { where, symlink: { symlink_attributes: noSattr, symlink_data: '../target' } });
  roundTrip(nfs3.encodeRENAME3args, nfs3.decodeRENAME3args, { from: where, to: { dir: fh(1), name: 'g' } });
  roundTrip(nfs3.encodeLINK3res, nfs3.decodeLINK3res, { status: nfsstat3.NFS3ERR_EXIST, resfail: { file_attributes: attrs, linkdir_wcc: wcc } });
});

function entries(n: number): nfs3.entry3[] {
  return Array.from({ length: n }, (_, i) => ({ fileid: BigInt(i + 2), name: `file-${i}`, cookie: BigInt(i + 1) }));
}

test('nfs3: READDIR with 10,000 entries, and an empty directory', () => {
  const res: nfs3.READDIR3res = {
    status: nfsstat3.NFS3_OK,
    resok: { dir_attributes: attrs, cookieverf: bytes(8), reply: { entries: entries(10_000), eof: true } },
  };
  roundTrip(nfs3.encodeREADDIR3res, nfs3.decodeREADDIR3res, res);
  const empty = roundTrip(nfs3.encodeREADDIR3res, nfs3.decodeREADDIR3res, {
    status: nfsstat3.NFS3_OK,
    resok: { dir_attributes: undefined, cookieverf: bytes(8), reply: { entries: [], eof: true } },
  });
  // status, attributes_follow, cookieverf, "no entry follows", eof
  assert.equal(empty.length, 4 + 4 + 8 + 4 + 4);
  roundTrip(nfs3.encodeREADDIR3args, nfs3.decodeREADDIR3args, { dir: fh(8), cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 });
});

test('nfs3: a linked list of 100,000 entries needs no deep stack', () => {
  const list: nfs3.dirlist3 = { entries: entries(100_000), eof: false };
  const buf = roundTrip(nfs3.encodedirlist3, nfs3.decodedirlist3, list);
  assert.ok(buf.length > 100_000 * 24);
});

test('nfs3: READDIRPLUS with 10,000 entries mixing present and absent attributes', () => {
  const plus: nfs3.entryplus3[] = entries(10_000).map((e, i) => ({
    ...e,
    name_attributes: i % 3 === 0 ? undefined : { ...attrs, fileid: e.fileid },
    name_handle: i % 5 === 0 ? undefined : fh((i % 64) + 1),
  }));
  roundTrip(nfs3.encodeREADDIRPLUS3res, nfs3.decodeREADDIRPLUS3res, {
    status: nfsstat3.NFS3_OK,
    resok: { dir_attributes: attrs, cookieverf: bytes(8), reply: { entries: plus, eof: true } },
  });
  roundTrip(nfs3.encodeREADDIRPLUS3res, nfs3.decodeREADDIRPLUS3res, { status: nfsstat3.NFS3ERR_BAD_COOKIE, resfail: { dir_attributes: undefined } });
});

test('nfs3: FSSTAT, FSINFO, PATHCONF, ACCESS, READLINK', () => {
  roundTrip(nfs3.encodeFSSTAT3res, nfs3.decodeFSSTAT3res, {
    status: nfsstat3.NFS3_OK,
    resok: { obj_attributes: attrs, tbytes: 1n << 50n, fbytes: 1n << 49n, abytes: 1n << 48n, tfiles: 1000n, ffiles: 900n, afiles: 800n, invarsec: 0 },
  });
  roundTrip(nfs3.encodeFSINFO3res, nfs3.decodeFSINFO3res, {
    status: nfsstat3.NFS3_OK,
    resok: {
      obj_attributes: undefined,
      rtmax: 1 << 20,
      rtpref: 1 << 20,
      rtmult: 4096,
      wtmax: 1 << 20,
      wtpref: 1 << 20,
      wtmult: 4096,
      dtpref: 65536,
      maxfilesize: 0x7fff_ffff_ffff_ffffn,
      time_delta: { seconds: 0, nseconds: 1 },
      properties: nfs3.FSF3_LINK | nfs3.FSF3_SYMLINK | nfs3.FSF3_HOMOGENEOUS | nfs3.FSF3_CANSETTIME,
    },
  });
  roundTrip(nfs3.encodePATHCONF3res, nfs3.decodePATHCONF3res, {
    status: nfsstat3.NFS3_OK,
    resok: { obj_attributes: attrs, linkmax: 32000, name_max: 255, no_trunc: true, chown_restricted: true, case_insensitive: false, case_preserving: true },
  });
  roundTrip(nfs3.encodeACCESS3args, nfs3.decodeACCESS3args, { object: fh(4), access: nfs3.ACCESS3_READ | nfs3.ACCESS3_EXECUTE });
  roundTrip(nfs3.encodeREADLINK3res, nfs3.decodeREADLINK3res, { status: nfsstat3.NFS3_OK, resok: { symlink_attributes: attrs, data: '/some/where' } });
});

test('mount3: MNT results, DUMP and EXPORT lists', () => {
  roundTrip(mount3.encodemountres3, mount3.decodemountres3, {
    fhs_status: mount3.mountstat3.MNT3_OK,
    mountinfo: { fhandle: bytes(40), auth_flavors: [1, 0, 390003] },
  });
  roundTrip(mount3.encodemountres3, mount3.decodemountres3, { fhs_status: mount3.mountstat3.MNT3ERR_ACCES });
  const dump: mount3.mountlist = Array.from({ length: 10_000 }, (_, i) => ({ ml_hostname: `client${i}`, ml_directory: `/export/${i}` }));
  roundTrip(mount3.encodemountlist, mount3.decodemountlist, dump);
  roundTrip(mount3.encodemountlist, mount3.decodemountlist, []);
  const exportsList: mount3.exports = [
    { ex_dir: '/srv', ex_groups: [] },
    { ex_dir: '/home', ex_groups: [{ gr_name: '192.168.0.0/24' }, { gr_name: '*.example.org' }] },
    ...Array.from({ length: 10_000 }, (_, i) => ({ ex_dir: `/e${i}`, ex_groups: [{ gr_name: `h${i}` }] })),
  ];
  roundTrip(mount3.encodeexports, mount3.decodeexports, exportsList);
  roundTrip(mount3.encodedirpath, mount3.decodedirpath, '/'.repeat(1024));
});

test('portmap: mappings, the DUMP list, CALLIT, and rpcbind types', () => {
  const m: portmap.mapping = { prog: 100003, vers: 3, prot: portmap.IPPROTO_TCP, port: 2049 };
  roundTrip(portmap.encodemapping, portmap.decodemapping, m);
  const list: portmap.pmaplist = Array.from({ length: 10_000 }, (_, i) => ({ map: { ...m, port: i } }));
  roundTrip(portmap.encodepmaplist, portmap.decodepmaplist, list);
  roundTrip(portmap.encodecall_args, portmap.decodecall_args, { prog: 100005, vers: 3, proc: 0, args: Buffer.alloc(0) });
  roundTrip(portmap.encodecall_result, portmap.decodecall_result, { port: 635, res: bytes(7) });

  const rpcb: portmap.rpcb = { r_prog: 100003, r_vers: 3, r_netid: 'tcp', r_addr: '127.0.0.1.8.1', r_owner: 'superuser' };
  roundTrip(portmap.encoderpcb, portmap.decoderpcb, rpcb);
  roundTrip(portmap.encoderpcblist_ptr, portmap.decoderpcblist_ptr, [{ rpcb_map: rpcb }, { rpcb_map: { ...rpcb, r_netid: 'tcp6', r_addr: '::1.8.1' } }]);
  roundTrip(portmap.encoderpcb_entry_list_ptr, portmap.decoderpcb_entry_list_ptr, [
    { rpcb_entry_map: { r_maddr: '127.0.0.1.8.1', r_nc_netid: 'tcp', r_nc_semantics: portmap.NC_TPI_COTS_ORD, r_nc_protofmly: 'inet', r_nc_proto: 'tcp' } },
  ]);
  const stat: portmap.rpcb_stat = {
    info: Array.from({ length: portmap.RPCBSTAT_HIGHPROC }, (_, i) => i),
    setinfo: 1,
    unsetinfo: -1,
    addrinfo: [{ prog: 1, vers: 2, success: 3, failure: 4, netid: 'udp' }],
    rmtinfo: [],
  };
  roundTrip(portmap.encoderpcb_stat_byvers, portmap.decoderpcb_stat_byvers, [stat, stat, { ...stat, addrinfo: [] }]);
  roundTrip(portmap.encodenetbuf, portmap.decodenetbuf, { maxlen: 16, buf: bytes(6) });
});

test('localio: the 16-byte UUID is a fixed opaque', () => {
  const uuid = bytes(16, 7);
  const buf = roundTrip(localio.encodeuuid_t, localio.decodeuuid_t, uuid);
  assert.deepEqual(buf, uuid); // no length word, no padding
});
