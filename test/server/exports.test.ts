import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  DEFAULT_OPTIONS,
  ExportsError,
  exportsForDir,
  findClientRule,
  formatOptions,
  mapCred,
  matchClient,
  parseClientAddress,
  parseExports,
  parseIPv6,
  type Export,
  type ExportOptions,
} from '../../src/server/exports.js';

const FILE = `
# exports for the lab
/srv/home      192.168.10.0/24(rw,sync,no_subtree_check) \\
               192.168.10.5(rw,no_root_squash) \\
               2001:db8:10::/48(rw) \\
               *(ro,all_squash,anonuid=1500,anongid=1500)

/srv/public    -ro,insecure   10.0.0.0/255.0.0.0  *(async)
"/srv/media files"   localhost(rw,insecure,fsid=42) \\
   fe80::/10(ro)
/srv/scratch/   10.1.2.3(rw,wdelay,crossmnt,sec=sys)
/srv/plain
/srv/names     build.example.com(rw) *.example.com(rw) @trusted(rw) 127.0.0.2(ro)
/srv/space\\040dir  ::1(rw)
`;

function byPath(list: Export[], p: string): Export {
  const e = list.find((x) => x.path === p);
  assert.ok(e, `export ${p}`);
  return e;
}

test('parses a realistic exports file', () => {
  const list = parseExports(FILE);
  assert.deepEqual(list.map((e) => e.path), ['/srv/home', '/srv/public', '/srv/media files', '/srv/scratch', '/srv/plain', '/srv/names', '/srv/space dir']);
  const home = byPath(list, '/srv/home');
  assert.equal(home.line, 3);
  assert.deepEqual(home.clients.map((c) => [c.client, c.kind, c.line]), [
    ['192.168.10.0/24', 'network', 3],
    ['192.168.10.5', 'host', 4],
    ['2001:db8:10::/48', 'network', 5],
    ['*', 'anonymous', 6],
  ]);
  const media = byPath(list, '/srv/media files');
  assert.equal(media.clients[0]!.options.fsid, 42);
  assert.equal(media.clients[1]!.client, 'fe80::/10');
  const scratch = byPath(list, '/srv/scratch');
  assert.deepEqual(scratch.clients[0]!.ignored, ['wdelay', 'crossmnt']);
});

test('a path without clients is exported to everyone with the defaults', () => {
  const plain = byPath(parseExports(FILE), '/srv/plain');
  assert.equal(plain.clients.length, 1);
  assert.equal(plain.clients[0]!.client, '*');
  assert.deepEqual(plain.clients[0]!.options, DEFAULT_OPTIONS);
  assert.deepEqual(matchClient(plain, '203.0.113.9', 700), DEFAULT_OPTIONS);
  assert.equal(formatOptions(DEFAULT_OPTIONS), 'ro,sync,root_squash,no_all_squash,secure,no_subtree_check');
});

test('matching: hosts before networks before *, whatever the order written', () => {
  const home = byPath(parseExports(FILE), '/srv/home');
  const admin = matchClient(home, '192.168.10.5', 800)!;
  assert.equal(admin.rw, true);
  assert.equal(admin.rootSquash, false);
  const lan = matchClient(home, '192.168.10.77', 800)!;
  assert.equal(lan.rw, true);
  assert.equal(lan.rootSquash, true);
  const world = matchClient(home, '198.51.100.1', 800)!;
  assert.equal(world.rw, false);
  assert.equal(world.allSquash, true);
  assert.equal(world.anonuid, 1500);
  assert.equal(findClientRule(home, '192.168.11.1')!.client, '*');
});

test('IPv4-mapped IPv6 addresses match IPv4 rules', () => {
  const home = byPath(parseExports(FILE), '/srv/home');
  assert.equal(findClientRule(home, '::ffff:192.168.10.5')!.client, '192.168.10.5');
  assert.equal(findClientRule(home, '::ffff:192.168.10.9')!.client, '192.168.10.0/24');
  assert.equal(findClientRule(home, '::FFFF:c0a8:0a05')!.client, '192.168.10.5');
  assert.equal(findClientRule(home, '::ffff:10.9.9.9')!.client, '*');
});

test('IPv6 networks, hosts and zones', () => {
  const list = parseExports(FILE);
  const home = byPath(list, '/srv/home');
  assert.equal(findClientRule(home, '2001:db8:10:ffff::1')!.client, '2001:db8:10::/48');
  assert.equal(findClientRule(home, '2001:db8:11::1')!.client, '*');
  const media = byPath(list, '/srv/media files');
  assert.equal(findClientRule(media, 'fe80::1234%eth0')!.client, 'fe80::/10');
  assert.equal(findClientRule(media, 'febf::1')!.client, 'fe80::/10');
  assert.equal(findClientRule(media, 'fec0::1'), undefined);
  const space = byPath(list, '/srv/space dir');
  assert.ok(matchClient(space, '::1', 1023));
  assert.equal(matchClient(space, '::2', 1023), undefined);
});

test('netmask form and host bits in the network address', () => {
  const pub = byPath(parseExports(FILE), '/srv/public');
  assert.equal(findClientRule(pub, '10.200.3.4')!.client, '10.0.0.0/255.0.0.0');
  assert.equal(findClientRule(pub, '11.0.0.1')!.client, '*');
  const [e] = parseExports('/x 10.1.2.3/16(rw)');
  assert.equal(findClientRule(e!, '10.1.200.1')!.client, '10.1.2.3/16');
  const [all] = parseExports('/x 0.0.0.0/0(rw) ::/0(ro)');
  assert.equal(findClientRule(all!, '8.8.8.8')!.client, '0.0.0.0/0');
  assert.equal(findClientRule(all!, '2001:db8::1')!.client, '::/0');
});

test('line default options apply to every client of the line', () => {
  const pub = byPath(parseExports(FILE), '/srv/public');
  const net10 = matchClient(pub, '10.1.1.1', 40000)!;
  assert.equal(net10.rw, false);
  assert.equal(net10.secure, false);
  const star = matchClient(pub, '1.1.1.1', 40000)!;
  assert.equal(star.secure, false);
  assert.equal(star.sync, false);
});

test('secure requires a source port below 1024', () => {
  const home = byPath(parseExports(FILE), '/srv/home');
  assert.ok(matchClient(home, '192.168.10.5', 1023));
  assert.equal(matchClient(home, '192.168.10.5', 1024), undefined);
  assert.ok(findClientRule(home, '192.168.10.5'), 'the rule is still found, for logging');
  const media = byPath(parseExports(FILE), '/srv/media files');
  assert.ok(matchClient(media, '127.0.0.1', 50000), 'insecure allows any port');
});

test('hostnames: only localhost matches; others parse but never match', () => {
  const list = parseExports(FILE);
  const media = byPath(list, '/srv/media files');
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(findClientRule(media, a)?.client, 'localhost', a);
  assert.equal(findClientRule(media, '10.0.0.1'), undefined);
  const names = byPath(list, '/srv/names');
  assert.deepEqual(names.clients.map((c) => [c.kind, c.canMatch]), [
    ['host', false],
    ['wildcard', false],
    ['netgroup', false],
    ['host', true],
  ]);
  assert.equal(findClientRule(names, '192.0.2.1'), undefined);
  assert.equal(findClientRule(names, '127.0.0.2')!.client, '127.0.0.2');
});

test('addresses that are not IPs match nothing', () => {
  const [e] = parseExports('/x *(rw)');
  assert.equal(matchClient(e!, '', 1), undefined);
  assert.equal(matchClient(e!, 'not-an-ip', 1), undefined);
  assert.equal(parseClientAddress('1.2.3'), undefined);
});

test('IPv6 parser', () => {
  const hex = (s: string): string => Buffer.from(parseIPv6(s)!).toString('hex');
  assert.equal(hex('::'), '0'.repeat(32));
  assert.equal(hex('::1'), '0'.repeat(31) + '1');
  assert.equal(hex('2001:db8::8:800:200c:417a'), '20010db80000000000080800200c417a');
  assert.equal(hex('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
  assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
  assert.equal(parseIPv6('1::2::3'), undefined);
  assert.equal(parseIPv6('fe80::1%eth0'), undefined);
});

test('quoting, escapes, comments and continuation', () => {
  const text = ['  # only a comment', '"/a b/c"  1.2.3.4(rw)  # trailing', '/d\\040e \\   ', '   5.6.7.8', '', '/f#notacomment'].join('\n');
  const list = parseExports(text);
  assert.deepEqual(list.map((e) => [e.path, e.line, e.clients.map((c) => c.client)]), [
    ['/a b/c', 2, ['1.2.3.4']],
    ['/d e', 3, ['5.6.7.8']],
    ['/f', 6, ['*']],
  ]);
  // CRLF files
  assert.equal(parseExports('/x 1.2.3.4(rw)\r\n/y\r\n').length, 2);
});

function parseError(text: string): ExportsError {
  try {
    parseExports(text, 'exports');
  } catch (e) {
    assert.ok(e instanceof ExportsError, String(e));
    return e;
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

test('errors carry the line number and say what is wrong', () => {
  const cases: [string, number, RegExp][] = [
    ['/ok *(rw)\n\n/bad host(rw,frobnicate)', 3, /unknown option "frobnicate"/],
    ['/a \\\n  1.2.3.4(rw) \\\n  5.6.7.8(bogus)', 3, /unknown option "bogus".*5\.6\.7\.8/],
    ['relative/path *(rw)', 1, /must be absolute/],
    ['/x host (rw)', 1, /have no client/],
    ['/x host(rw', 1, /malformed option list/],
    ['/x host(rw, sync)', 1, /malformed option list/],
    ['/x *(constructor)', 1, /unknown option "constructor"/],
    ['/x *(anonuid=-2)', 1, /anonuid needs a number/],
    ['/x *(anongid=abc)', 1, /anongid needs a number/],
    ['/x *(fsid=x)', 1, /fsid/],
    ['/x *(sec=krb5)', 1, /sec=krb5 is not supported/],
    ['/x 10.0.0.0/33(rw)', 1, /prefix length or netmask/],
    ['/x 10.0.0.0/255.0.255.0(rw)', 1, /prefix length or netmask/],
    ['/x 2001:db8::/129(rw)', 1, /prefix length/],
    ['/x gss/krb5(rw)', 1, /bad network/],
    ['/x bad_host!(rw)', 1, /bad client/],
    ['/x *(rw)\n\n"/y *(rw)', 3, /unterminated quote/],
    ['/x *(rw)\n/y\n/x/ 1.2.3.4', 3, /already exported on line 1/],
    ['/x 1.2.3.4 -rw', 1, /must come right after the path/],
  ];
  for (const [text, line, re] of cases) {
    const e = parseError(text);
    assert.equal(e.line, line, `${JSON.stringify(text)}: ${e.message}`);
    assert.match(e.message, re);
    assert.match(e.message, new RegExp(`^exports: line ${line}: `));
  }
});

const ROOT = { uid: 0, gid: 0, gids: [0, 5, 10] };
const USER = { uid: 1000, gid: 1000, gids: [1000, 0, 27] };

function opts(o: Partial<ExportOptions>): ExportOptions {
  return { ...DEFAULT_OPTIONS, ...o };
}

test('root_squash maps uid 0 and gid 0, in the aux groups too', () => {
  const o = opts({ anonuid: 65534, anongid: 65533 });
  assert.deepEqual(mapCred(o, ROOT), { uid: 65534, gid: 65533, gids: [65533, 5, 10] });
  assert.deepEqual(mapCred(o, USER), { uid: 1000, gid: 1000, gids: [1000, 65533, 27] });
  assert.deepEqual(mapCred(o, { uid: 5, gid: 0, gids: [] }), { uid: 5, gid: 65533, gids: [] });
});

test('no_root_squash passes ids through; all_squash and AUTH_NONE map to anon', () => {
  assert.deepEqual(mapCred(opts({ rootSquash: false }), ROOT), ROOT);
  const all = opts({ allSquash: true, anonuid: 1500, anongid: 1501 });
  assert.deepEqual(mapCred(all, USER), { uid: 1500, gid: 1501, gids: [] });
  assert.deepEqual(mapCred(all, ROOT), { uid: 1500, gid: 1501, gids: [] });
  assert.deepEqual(mapCred(opts({ rootSquash: false }), undefined), { uid: 65534, gid: 65534, gids: [] });
  // From a parsed file.
  const world = matchClient(byPath(parseExports(FILE), '/srv/home'), '198.51.100.1', 1)!;
  assert.deepEqual(mapCred(world, USER), { uid: 1500, gid: 1500, gids: [] });
});

test('exportsForDir: rw, root_squash, insecure unless asked', () => {
  const [unpriv] = exportsForDir('some/dir', { secure: false });
  assert.equal(unpriv!.path, path.resolve('some/dir'));
  const o = matchClient(unpriv!, '127.0.0.1', 45000)!;
  assert.equal(o.rw, true);
  assert.equal(o.rootSquash, true);
  assert.equal(o.allSquash, false);
  assert.equal(o.secure, false);
  const [priv] = exportsForDir('/srv/x', { secure: true });
  assert.equal(matchClient(priv!, '127.0.0.1', 45000), undefined);
  assert.ok(matchClient(priv!, '127.0.0.1', 800));
  // Unprivileged and NATed clients must be able to mount `tsnfs serve DIR`.
  assert.ok(matchClient(exportsForDir('/srv/x')[0]!, '10.0.2.2', 45000));
});
