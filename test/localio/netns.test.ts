// Locality is proven by the registry, never by addresses: the server runs
// in one network namespace and the client in another, joined by a veth pair
// (10.200.N.1 and 10.200.N.2, a /30 that exists only inside these
// namespaces). The client reaches the server at a non-loopback address that
// is not its own, and still goes local when both use the same registry
// directory; with separate registry directories it stays remote.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ClientChild, dec, execText, isRoot, makeDirs, noFdPassing, sha, startServerChild, type Dirs, type ServerChild } from './helpers.js';

async function canUseNetns(): Promise<string | false> {
  if (!isRoot) return 'needs root (ip netns)';
  const fd = noFdPassing();
  if (fd) return fd;
  try {
    await execText('ip', ['netns', 'list']);
    return false;
  } catch (err) {
    return `ip netns unavailable: ${(err as Error).message}`;
  }
}

const skip = await canUseNetns();

describe('LOCALIO across network namespaces', { skip, timeout: 120_000 }, () => {
  const tag = (process.pid % 10000).toString(36);
  const nsServer = `tsnfs-lio-s-${tag}`;
  const nsClient = `tsnfs-lio-c-${tag}`;
  const vethS = `tlio${tag}s`;
  const vethC = `tlio${tag}c`;
  const net = 10 + (process.pid % 240);
  const serverAddr = `10.200.${net}.1`;
  const clientAddr = `10.200.${net}.2`;
  let d: Dirs;
  let srv: ServerChild;
  const children: ClientChild[] = [];

  const ip = (...args: string[]): Promise<string> => execText('ip', args);

  before(async () => {
    for (const ns of [nsServer, nsClient]) await ip('netns', 'del', ns).catch(() => undefined);
    await ip('netns', 'add', nsServer);
    await ip('netns', 'add', nsClient);
    await ip('link', 'add', vethS, 'type', 'veth', 'peer', 'name', vethC);
    await ip('link', 'set', vethS, 'netns', nsServer);
    await ip('link', 'set', vethC, 'netns', nsClient);
    await ip('-n', nsServer, 'addr', 'add', `${serverAddr}/30`, 'dev', vethS);
    await ip('-n', nsClient, 'addr', 'add', `${clientAddr}/30`, 'dev', vethC);
    for (const [ns, dev] of [
      [nsServer, vethS],
      [nsClient, vethC],
    ] as const) {
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', dev, 'up');
    }
    d = makeDirs();
    // The export admits the client's network only: the rules see the NFS connection's address.
    srv = await startServerChild(d, { netns: nsServer, host: serverAddr, registry: d.registry, exportsText: `${d.exp} 10.200.${net}.0/30(rw,no_root_squash,insecure)\n` });
  });

  after(async () => {
    await Promise.all(children.map((c) => c.exit()));
    await srv?.stop();
    for (const ns of [nsServer, nsClient]) await ip('netns', 'del', ns).catch(() => undefined);
    d?.cleanup();
  });

  async function clientIn(registry: string): Promise<ClientChild> {
    const c = new ClientChild({ netns: nsClient });
    children.push(c);
    await c.do({ op: 'connect', opts: { host: serverAddr, nfsPort: srv.port, mountPort: srv.port, path: d.exp, localioRegistry: registry } });
    return c;
  }

  test('the namespaces do not share addresses', async () => {
    const inClient = await execText('ip', ['-n', nsClient, '-4', 'addr', 'show']);
    assert.match(inClient, new RegExp(`inet ${clientAddr.replace(/\./g, '\\.')}/30`));
    assert.doesNotMatch(inClient, new RegExp(serverAddr.replace(/\./g, '\\.')));
  });

  test('a shared registry directory: the client goes local although the addresses differ', async () => {
    const c = await clientIn(d.registry);
    assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), true);
    const data = randomBytes(1_500_000);
    await c.call('writeFile', 'shared.bin', data);
    assert.equal(sha(dec(await c.call('readFile', 'shared.bin'))), sha(data));
    assert.equal(sha(fs.readFileSync(path.join(d.exp, 'shared.bin'))), sha(data));
    const s = await c.stats();
    assert.equal(s.localio.state, 'local');
    assert.equal(s.localio.mode, 'channel');
    assert.ok(s.localio.writeBytes >= data.length && s.localio.readBytes >= data.length);
    assert.equal(s.nfsOps['READ'], 0);
    assert.equal(s.nfsOps['WRITE'], 0);
  });

  test('separate registry directories: the client stays remote', async () => {
    const own = fs.mkdtempSync(path.join(d.root, 'client-registry-'));
    fs.chmodSync(own, 0o700);
    const c = await clientIn(own);
    assert.equal(await c.do({ op: 'ready', timeoutMs: 5000 }), false);
    const data = randomBytes(300_000);
    await c.call('writeFile', 'apart.bin', data);
    assert.equal(sha(dec(await c.call('readFile', 'apart.bin'))), sha(data));
    const s = await c.stats();
    assert.equal(s.localio.state, 'remote');
    assert.equal(s.localio.probes, 1);
    assert.equal(s.localio.probeSuccesses, 0);
    assert.ok(s.nfsOps['WRITE']! > 0 && s.nfsOps['READ']! > 0);
  });
});
