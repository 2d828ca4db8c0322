// Descriptor passing over Unix SOCK_SEQPACKET sockets (FdListener /
// FdChannel), in one process and between two (a child node process), and
// SO_PEERCRED.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FdChannel,
  FdListener,
  MAX_FDS_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  fdPassingAvailable,
  native,
  nativeStatus,
  peerCred,
} from '../../src/native/index.js';

const skip = fdPassingAvailable() ? false : `native addon unavailable: ${nativeStatus().reason ?? '?'}`;

interface Item {
  value: unknown;
  fds: number[];
}

/** Collects a channel's messages (taking their descriptors unless told not to). */
class Inbox {
  private readonly items: Item[] = [];
  private readonly waiters: ((item: Item) => void)[] = [];

  constructor(ch: FdChannel, take = true) {
    ch.on('message', (msg) => {
      const text = msg.data.toString();
      const item = { value: text.startsWith('{') ? JSON.parse(text) : text, fds: take ? msg.takeFds() : [...msg.fds] };
      const w = this.waiters.shift();
      if (w) w(item);
      else this.items.push(item);
    });
  }

  next(timeoutMs = 10_000): Promise<Item> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    return new Promise<Item>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message in time')), timeoutMs);
      this.waiters.push((i) => {
        clearTimeout(timer);
        resolve(i);
      });
    });
  }
}

function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Close-on-exec, from /proc/self/fdinfo (flags are octal; O_CLOEXEC is 02000000). */
function isCloexec(fd: number): boolean {
  const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  return (parseInt(flags ?? '0', 8) & 0o2000000) !== 0;
}

async function pair(dir: string, name: string): Promise<{ listener: FdListener; server: FdChannel; client: FdChannel }> {
  const listener = FdListener.listen(path.join(dir, name));
  const accepted = once(listener, 'connection') as Promise<[FdChannel]>;
  const client = await FdChannel.connect(path.join(dir, name));
  const [server] = await accepted;
  return { listener, server, client };
}

describe('fd passing in one process', { skip }, () => {
  let dir: string;
  let listener: FdListener;
  let server: FdChannel;
  let client: FdChannel;
  let file: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-fdpass-'));
    ({ listener, server, client } = await pair(dir, 'one.sock'));
    file = path.join(dir, 'data');
    fs.writeFileSync(file, 'hello, descriptor');
  });

  after(() => {
    client.close();
    server.close();
    listener.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a received descriptor is a new descriptor on the same open file', async () => {
    const inbox = new Inbox(server);
    const fd = fs.openSync(file, 'r+');
    await client.send('grant', [fd]);
    const got = await inbox.next();
    assert.equal(got.fds.length, 1);
    const received = got.fds[0]!;
    assert.notEqual(received, fd, 'a new descriptor number');
    const a = fs.fstatSync(fd);
    const b = fs.fstatSync(received);
    assert.equal(b.ino, a.ino);
    assert.equal(b.dev, a.dev);
    assert.ok(isCloexec(received), 'received descriptors are close-on-exec (MSG_CMSG_CLOEXEC)');
    // The sender's copy can go; the received one still works.
    fs.closeSync(fd);
    const buf = Buffer.alloc(17);
    assert.equal(fs.readSync(received, buf, 0, 17, 0), 17);
    assert.equal(buf.toString(), 'hello, descriptor');
    fs.closeSync(received);
    server.removeAllListeners('message');
  });

  test('descriptors the receiver does not take are closed', async () => {
    const inbox = new Inbox(server, false);
    const fd = fs.openSync(file, 'r');
    const before = openFdCount();
    await client.send('three', [fd, fd, fd]);
    const got = await inbox.next();
    assert.equal(got.fds.length, 3);
    assert.equal(openFdCount(), before, 'no descriptor leaked');
    for (const n of got.fds) assert.throws(() => fs.fstatSync(n), { code: 'EBADF' });
    fs.closeSync(fd);
    server.removeAllListeners('message');
  });

  test('a message without descriptors, and the most descriptors one message carries', async () => {
    const inbox = new Inbox(server);
    await client.sendJson({ plain: true });
    const plain = await inbox.next();
    assert.deepEqual(plain.value, { plain: true });
    assert.deepEqual(plain.fds, []);

    const fd = fs.openSync(file, 'r');
    const before = openFdCount();
    await client.send('many', new Array<number>(MAX_FDS_PER_MESSAGE).fill(fd));
    const many = await inbox.next();
    assert.equal(many.fds.length, MAX_FDS_PER_MESSAGE);
    assert.equal(new Set(many.fds).size, MAX_FDS_PER_MESSAGE, 'each one a distinct descriptor');
    for (const n of many.fds) fs.closeSync(n);
    assert.equal(openFdCount(), before);
    fs.closeSync(fd);
    server.removeAllListeners('message');
  });

  test('messages wait in the socket until a listener attaches', async () => {
    await client.sendJson({ early: 1 });
    await client.sendJson({ early: 2 });
    await new Promise((r) => setTimeout(r, 20)); // several loop turns with nobody listening
    const inbox = new Inbox(server);
    assert.deepEqual((await inbox.next()).value, { early: 1 });
    assert.deepEqual((await inbox.next()).value, { early: 2 });
    server.removeAllListeners('message');
  });

  test('a paused receiver holds the sender back; nothing is lost or reordered', async () => {
    const inbox = new Inbox(server);
    server.pause();
    const N = 500;
    let sent = 0;
    const sends: Promise<void>[] = [];
    for (let seq = 0; seq < N; seq++) sends.push(client.sendJson({ seq }).then(() => void sent++));
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(sent < N, `the socket filled up (EAGAIN) and sends wait: ${sent} of ${N} went out`);
    server.resume();
    await Promise.all(sends);
    for (let seq = 0; seq < N; seq++) assert.deepEqual((await inbox.next()).value, { seq });
    server.removeAllListeners('message');
  });

  test('misuse is refused before anything is sent', async () => {
    await assert.rejects(client.send(''), RangeError);
    await assert.rejects(client.send(Buffer.alloc(MAX_MESSAGE_BYTES + 1)), RangeError);
    await assert.rejects(client.send('x', new Array<number>(MAX_FDS_PER_MESSAGE + 1).fill(0)), RangeError);
    await assert.rejects(FdChannel.connect(path.join(dir, 'nobody.sock')), { code: 'ENOENT' });
    assert.throws(() => FdListener.listen(path.join(dir, 'one.sock')), { code: 'EADDRINUSE' });
    assert.throws(() => FdListener.listen(path.join(dir, 'x'.repeat(120))), { code: 'ENAMETOOLONG' });
  });

  test('peerCred is this process on both ends', () => {
    const want = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    assert.deepEqual(server.peerCred(), want);
    assert.deepEqual(client.peerCred(), want);
    assert.deepEqual(peerCred(server.fd), want);
    const notSocket = fs.openSync(file, 'r');
    assert.throws(() => peerCred(notSocket), { code: 'ENOTSOCK', syscall: 'getsockopt' });
    fs.closeSync(notSocket);
  });

  test('a truncated record ends the channel with EMSGSIZE and leaks nothing', async (t) => {
    const p = await pair(dir, 'trunc.sock');
    t.after(() => {
      p.client.close();
      p.listener.close();
    });
    const errors: Error[] = [];
    p.server.on('error', (e) => errors.push(e));
    p.server.on('message', () => assert.fail('a truncated record must not be delivered'));
    const closed = new Promise((resolve) => p.server.on('close', () => resolve(undefined)));
    const fd = fs.openSync(file, 'r');
    const before = openFdCount();
    // Bypass the channel's own size check to send a record too big to read.
    assert.equal(native!.sendMsg(p.client.fd, Buffer.alloc(MAX_MESSAGE_BYTES + 100), [fd]), MAX_MESSAGE_BYTES + 100);
    await closed;
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as NodeJS.ErrnoException).code, 'EMSGSIZE');
    assert.equal(openFdCount(), before - 1, 'the passed descriptor and the server socket are closed');
    fs.closeSync(fd);
  });

  test('closing: the peer sees close, later sends fail with EPIPE, the socket file goes', async (t) => {
    const p = await pair(dir, 'close.sock');
    t.after(() => p.listener.close());
    p.server.on('message', () => undefined); // a channel reads (and sees EOF) while someone listens
    const closed = once(p.server, 'close');
    p.client.close();
    await closed;
    assert.ok(p.server.closed);
    await assert.rejects(p.server.send('late'), { code: 'EPIPE' });
    assert.ok(fs.existsSync(path.join(dir, 'close.sock')));
    p.listener.close();
    assert.ok(!fs.existsSync(path.join(dir, 'close.sock')));
  });
});

describe('fd passing between two processes', { skip }, () => {
  let dir: string;
  let listener: FdListener;
  let child: ChildProcess;
  let ch: FdChannel;
  let inbox: Inbox;
  let childExit: Promise<unknown[]>;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-fdpass2-'));
    listener = FdListener.listen(path.join(dir, 'peer.sock'));
    const accepted = once(listener, 'connection') as Promise<[FdChannel]>;
    const peer = fileURLToPath(new URL('./fd-peer.js', import.meta.url));
    child = spawn(process.execPath, [peer, path.join(dir, 'peer.sock')], { stdio: ['ignore', 'inherit', 'inherit'] });
    childExit = once(child, 'exit');
    [ch] = await accepted;
    inbox = new Inbox(ch);
  });

  after(() => {
    if (child.exitCode === null) child.kill();
    listener.close();
    ch.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('peerCred names the child; the child sees this process', async () => {
    await ch.sendJson({ cmd: 'hello' });
    const hello = (await inbox.next()).value as { pid: number; uid: number; cred: { pid: number; uid: number } };
    assert.equal(hello.pid, child.pid);
    assert.deepEqual(ch.peerCred(), { pid: child.pid, uid: process.getuid!(), gid: process.getgid!() });
    assert.equal(hello.cred.pid, process.pid, 'a connecting socket sees the listener');
  });

  test('the parent grants a descriptor; the child writes through it; the parent reads it back', async () => {
    const file = path.join(dir, 'granted');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r+');
    const st = fs.fstatSync(fd);
    await ch.sendJson({ cmd: 'write', text: 'written by the child', position: 0 }, [fd]);
    const wrote = (await inbox.next()).value as { ino: number; dev: number };
    assert.equal(wrote.ino, st.ino, 'the child holds the same file');
    assert.equal(wrote.dev, st.dev);
    const buf = Buffer.alloc(64);
    const n = fs.readSync(fd, buf, 0, 64, 0);
    assert.equal(buf.subarray(0, n).toString(), 'written by the child');
    fs.closeSync(fd);
  });

  test('the child grants a descriptor back', async () => {
    const file = path.join(dir, 'childs');
    fs.writeFileSync(file, 'opened by the child');
    await ch.sendJson({ cmd: 'open', path: file });
    const got = await inbox.next();
    assert.equal(got.fds.length, 1);
    const buf = Buffer.alloc(64);
    const n = fs.readSync(got.fds[0]!, buf, 0, 64, 0);
    assert.equal(buf.subarray(0, n).toString(), 'opened by the child');
    assert.equal(fs.fstatSync(got.fds[0]!).ino, fs.statSync(file).ino);
    fs.closeSync(got.fds[0]!);
  });

  test('a message with no descriptor', async () => {
    await ch.sendJson({ cmd: 'plain', n: 41 });
    const got = await inbox.next();
    assert.deepEqual(got.value, { cmd: 'plain', n: 42, fds: 0 });
    assert.deepEqual(got.fds, []);
  });

  test('many messages back to back, both ways, in order', async () => {
    const N = 3000;
    const file = path.join(dir, 'burst');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r');
    const sends: Promise<void>[] = [];
    for (let seq = 0; seq < N; seq++) sends.push(ch.sendJson({ cmd: 'burst-in', seq }, seq % 10 === 0 ? [fd] : []));
    sends.push(ch.sendJson({ cmd: 'burst-done' }));
    await Promise.all(sends);
    fs.closeSync(fd);
    const burst = (await inbox.next()).value as Record<string, unknown>;
    assert.deepEqual(burst, { cmd: 'burst', count: N, inOrder: true, fds: N / 10, last: N - 1 });

    await ch.sendJson({ cmd: 'burst-out', n: N });
    for (let seq = 0; seq < N; seq++) assert.deepEqual((await inbox.next()).value, { cmd: 'seq', seq });
  });

  test('closing: the child closes, the parent sees close, the child exits cleanly', async () => {
    const closed = once(ch, 'close');
    await ch.sendJson({ cmd: 'bye' });
    await closed;
    const [code] = await childExit;
    assert.equal(code, 0);
  });
});
