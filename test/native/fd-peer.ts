// The other process in fd-channel.test.ts: connects to the parent's socket
// and follows its commands, answering each with a JSON message.
//
//   node fd-peer.js SOCKET_PATH

import fs from 'node:fs';
import { FdChannel } from '../../src/native/index.js';

type Command =
  | { cmd: 'hello' }
  | { cmd: 'write'; text: string; position: number }
  | { cmd: 'open'; path: string }
  | { cmd: 'plain'; n: number }
  | { cmd: 'burst-in'; seq: number }
  | { cmd: 'burst-done' }
  | { cmd: 'burst-out'; n: number }
  | { cmd: 'bye' };

const socketPath = process.argv[2];
if (!socketPath) throw new Error('usage: fd-peer SOCKET_PATH');

const ch = await FdChannel.connect(socketPath);
let burst = { count: 0, inOrder: true, fds: 0, last: -1 };

ch.on('message', (msg) => {
  const m = msg.json<Command>();
  switch (m.cmd) {
    case 'hello':
      void ch.sendJson({ cmd: 'hello', pid: process.pid, uid: process.getuid?.(), cred: ch.peerCred() });
      break;
    case 'write': {
      // Take the granted descriptor, check what it is, write through it.
      const [fd] = msg.takeFds();
      if (fd === undefined) throw new Error('write without a descriptor');
      const st = fs.fstatSync(fd);
      fs.writeSync(fd, m.text, m.position, 'utf8');
      fs.closeSync(fd);
      void ch.sendJson({ cmd: 'wrote', ino: st.ino, dev: st.dev, fd });
      break;
    }
    case 'open': {
      // Grant a descriptor the other way: the child opens, the parent reads.
      const fd = fs.openSync(m.path, 'r');
      void ch.sendJson({ cmd: 'opened' }, [fd]).then(() => fs.closeSync(fd));
      break;
    }
    case 'plain':
      void ch.sendJson({ cmd: 'plain', n: m.n + 1, fds: msg.fds.length });
      break;
    case 'burst-in':
      if (m.seq !== burst.last + 1) burst.inOrder = false;
      burst.last = m.seq;
      burst.count++;
      burst.fds += msg.fds.length; // not taken: the channel closes them
      break;
    case 'burst-done':
      void ch.sendJson({ cmd: 'burst', ...burst });
      burst = { count: 0, inOrder: true, fds: 0, last: -1 };
      break;
    case 'burst-out':
      for (let i = 0; i < m.n; i++) void ch.sendJson({ cmd: 'seq', seq: i });
      break;
    case 'bye':
      ch.close();
      break;
  }
});
ch.on('close', () => process.exit(0));
