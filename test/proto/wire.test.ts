// Exact bytes, worked out by hand from the XDR rules (RFC 4506: big-endian
// 4-byte units, lengths before variable data, zero padding to 4 bytes, a bool
// before optional data), and what the decoders refuse.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localio, mount3, nfs3, portmap } from '../../src/proto/index.js';
import { XdrError, XdrReader } from '../../src/xdr/index.js';
import { type Decoder, bytes, decode, encode, hex } from './helpers.js';

const { nfsstat3, ftype3, time_how, createmode3, stable_how } = nfs3;

test('GETATTR3args with a 3-byte handle: length, data, one byte of padding', () => {
  const buf = encode(nfs3.encodeGETATTR3args, { object: { data: hex('aabbcc') } });
  assert.deepEqual(buf, hex('00000003 aabbcc00'));
  assert.deepEqual(decode(nfs3.decodeGETATTR3args, buf), { object: { data: hex('aabbcc') } });
});

test('READ3args: handle, 64-bit offset, 32-bit count', () => {
  const buf = encode(nfs3.encodeREAD3args, { file: { data: hex('0102030405060708') }, offset: 0x1_0000_0002n, count: 4096 });
  assert.deepEqual(buf, hex('00000008 0102030405060708 00000001 00000002 00001000'));
});

test('absent optional data is a single FALSE; LOOKUP3res failure', () => {
  assert.deepEqual(encode(nfs3.encodepost_op_attr, undefined), hex('00000000'));
  assert.deepEqual(
    encode(nfs3.encodeLOOKUP3res, { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_attributes: undefined } }),
    hex('00000002 00000000'),
  );
  assert.deepEqual(encode(nfs3.encodeGETATTR3res, { status: nfsstat3.NFS3ERR_BADHANDLE }), hex('00002711'));
});

test('sattr3: four set_it flags, then two time_how discriminants', () => {
  const buf = encode(nfs3.encodesattr3, {
    mode: 0o644,
    uid: undefined,
    gid: undefined,
    size: 0n,
    atime: { set_it: time_how.DONT_CHANGE },
    mtime: { set_it: time_how.SET_TO_CLIENT_TIME, mtime: { seconds: 16, nseconds: 1 } },
  });
  assert.deepEqual(
    buf,
    hex(
      '00000001 000001a4' + // mode set to 0644
        '00000000' + // uid unchanged
        '00000000' + // gid unchanged
        '00000001 00000000 00000000' + // size set to 0 (a hyper)
        '00000000' + // atime DONT_CHANGE
        '00000002 00000010 00000001', // mtime SET_TO_CLIENT_TIME 16.000000001
    ),
  );
});

test('createhow3 EXCLUSIVE: the discriminant then 8 verifier bytes, no length', () => {
  const buf = encode(nfs3.encodecreatehow3, { mode: createmode3.EXCLUSIVE, verf: hex('0102030405060708') });
  assert.deepEqual(buf, hex('00000002 0102030405060708'));
});

test('WRITE3args with 5 bytes of data: 3 bytes of padding', () => {
  const buf = encode(nfs3.encodeWRITE3args, { file: { data: hex('ff') }, offset: 0n, count: 5, stable: stable_how.DATA_SYNC, data: Buffer.from('hello') });
  assert.deepEqual(buf, hex('00000001 ff000000 00000000 00000000 00000005 00000001 00000005 68656c6c6f000000'));
});

test('dirlist3: each entry is preceded by TRUE and the list ends with FALSE', () => {
  const buf = encode(nfs3.encodedirlist3, {
    entries: [
      { fileid: 1n, name: 'a', cookie: 2n },
      { fileid: 3n, name: 'bcde', cookie: 4n },
    ],
    eof: true,
  });
  assert.deepEqual(
    buf,
    hex(
      '00000001 00000000 00000001 00000001 61000000 00000000 00000002' +
        '00000001 00000000 00000003 00000004 62636465 00000000 00000004' +
        '00000000' + // no more entries
        '00000001', // eof
    ),
  );
});

test('mountres3, mapping, and the LOCALIO UUID', () => {
  assert.deepEqual(
    encode(mount3.encodemountres3, { fhs_status: mount3.mountstat3.MNT3_OK, mountinfo: { fhandle: hex('deadbeef'), auth_flavors: [1] } }),
    hex('00000000 00000004 deadbeef 00000001 00000001'),
  );
  assert.deepEqual(encode(mount3.encodemountres3, { fhs_status: mount3.mountstat3.MNT3ERR_ACCES }), hex('0000000d'));
  assert.deepEqual(
    encode(portmap.encodemapping, { prog: 100003, vers: 3, prot: portmap.IPPROTO_TCP, port: 2049 }),
    hex('000186a3 00000003 00000006 00000801'),
  );
  const uuid = hex('00112233445566778899aabbccddeeff');
  assert.deepEqual(encode(localio.LOCALIO_V1_TABLE.procedures[1].encodeArgs, uuid), uuid);
});

/** Asserts that decoding throws XdrError. */
function refuses<T>(dec: Decoder<T>, buf: Buffer, why?: RegExp): void {
  assert.throws(
    () => dec(new XdrReader(buf)),
    (e: unknown) => e instanceof XdrError && (!why || why.test(e.message)),
    `expected XdrError${why ? ` matching ${why}` : ''}`,
  );
}

test('every truncation of a valid encoding is refused with XdrError', () => {
  const attrs: nfs3.fattr3 = {
    type: ftype3.NF3DIR,
    mode: 0o755,
    nlink: 2,
    uid: 0,
    gid: 0,
    size: 4096n,
    used: 4096n,
    rdev: { specdata1: 0, specdata2: 0 },
    fsid: 1n,
    fileid: 2n,
    atime: { seconds: 1, nseconds: 0 },
    mtime: { seconds: 1, nseconds: 0 },
    ctime: { seconds: 1, nseconds: 0 },
  };
  const cases: [Decoder<unknown>, Buffer][] = [
    [
      nfs3.decodeREADDIRPLUS3res,
      encode(nfs3.encodeREADDIRPLUS3res, {
        status: nfsstat3.NFS3_OK,
        resok: {
          dir_attributes: attrs,
          cookieverf: bytes(8),
          reply: { entries: [{ fileid: 5n, name: 'xyz', cookie: 1n, name_attributes: attrs, name_handle: { data: bytes(9) } }], eof: true },
        },
      }),
    ],
    [nfs3.decodeREAD3res, encode(nfs3.encodeREAD3res, { status: nfsstat3.NFS3_OK, resok: { file_attributes: undefined, count: 5, eof: true, data: bytes(5) } })],
    [nfs3.decodeCREATE3args, encode(nfs3.encodeCREATE3args, { where: { dir: { data: bytes(8) }, name: 'n' }, how: { mode: createmode3.EXCLUSIVE, verf: bytes(8) } })],
    [mount3.decodeexports, encode(mount3.encodeexports, [{ ex_dir: '/a', ex_groups: [{ gr_name: 'g' }] }])],
    [portmap.decoderpcb_stat_byvers, encode(portmap.encoderpcb_stat_byvers, Array.from({ length: 3 }, () => ({ info: new Array<number>(13).fill(0), setinfo: 0, unsetinfo: 0, addrinfo: [], rmtinfo: [] })))],
    [localio.decodeuuid_t, bytes(16)],
  ];
  for (const [dec, full] of cases) {
    assert.doesNotThrow(() => decode(dec, full));
    for (let n = 0; n < full.length; n++) refuses(dec, full.subarray(0, n));
  }
});

test('enum values outside the definition are refused', () => {
  refuses(nfs3.decodeGETATTR3res, hex('00000003'), /bad enum value 3/); // no nfsstat3 is 3
  refuses(nfs3.decodeftype3, hex('00000000'));
  refuses(nfs3.decodeftype3, hex('00000008'));
  refuses(nfs3.decodecreatehow3, hex('00000003'));
  refuses(nfs3.decodestable_how, hex('ffffffff'));
  refuses(mount3.decodemountres3, hex('00000003'));
  // A bool is 0 or 1, including the discriminant of optional data.
  refuses(nfs3.decodepost_op_attr, hex('00000002'));
  refuses(nfs3.decodedirlist3, hex('00000002'));
});

test('lengths past a bound are refused, on decode and encode', () => {
  const fh65 = Buffer.concat([hex('00000041'), Buffer.alloc(68)]);
  refuses(nfs3.decodenfs_fh3, fh65, /exceeds limit 64/);
  refuses(mount3.decodefhandle3, fh65, /exceeds limit 64/);
  refuses(mount3.decodedirpath, Buffer.concat([hex('00000401'), Buffer.alloc(1028)]), /exceeds limit 1024/);
  refuses(mount3.decodename, Buffer.concat([hex('00000100'), Buffer.alloc(256)]), /exceeds limit 255/);
  assert.equal(decode(mount3.decodename, Buffer.concat([hex('000000ff'), Buffer.alloc(256, 0x61).subarray(0, 256)])), 'a'.repeat(255));
  // A huge length with few bytes present is refused before any allocation.
  refuses(nfs3.decodeWRITE3args, hex('00000000 00000000 00000000 00000000 00000000 7fffffff 00'), /truncated/);
  refuses(mount3.decodemountres3_ok, hex('00000000 ffffffff'), /exceeds the data present/);

  const tooLong = (f: () => void): void => assert.throws(f, XdrError);
  tooLong(() => encode(nfs3.encodenfs_fh3, { data: Buffer.alloc(65) }));
  tooLong(() => encode(mount3.encodename, 'x'.repeat(256)));
  tooLong(() => encode(mount3.encodename, '\u00e9'.repeat(128))); // 256 bytes in UTF-8
  tooLong(() => encode(nfs3.encodecookieverf3, Buffer.alloc(7))); // fixed opaque of the wrong size
  tooLong(() => encode(localio.encodeuuid_t, Buffer.alloc(15)));
  tooLong(() => encode(portmap.encoderpcbs_proc, [1, 2, 3])); // fixed array of the wrong length
  tooLong(() => encode(nfs3.encodenfsstat3, 3 as nfs3.nfsstat3));
  tooLong(() => encode(nfs3.encodecreatehow3, { mode: 7 } as unknown as nfs3.createhow3));
});
