// The NFSv3 suite over MemoryBackend, passed to startServer as an embedder would.

import { MemoryBackend } from '../../src/fs/index.js';
import { startServer } from '../../src/server/index.js';
import { parseExports } from '../../src/server/exports.js';
import { nfsSuite, type FixtureOptions } from './suite.js';

const EXPORT = '/mem';

nfsSuite(
  'MemoryBackend',
  async (opts: FixtureOptions = {}) => {
    const backend = new MemoryBackend({ rootMode: 0o777 });
    const server = opts.clients
      ? await startServer({ nfsPort: 0, portmapPort: 0, exports: parseExports(`${EXPORT} ${opts.clients}`), backends: { [EXPORT]: backend } })
      : await startServer({ nfsPort: 0, portmapPort: 0, dir: EXPORT, backend });
    return {
      server,
      exportPath: EXPORT,
      cleanup: async () => {
        await server.close();
        await backend.close();
      },
    };
  },
  // Nothing is more durable than the tree itself: every write is FILE_SYNC.
  { canChown: true, committed: () => 2 },
);
