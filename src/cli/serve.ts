// `tsnfs serve [DIR]`: run the server. Flag names are an interface that
// scripts and operators rely on: keep them.

import { Command, Option } from 'commander';
import { createLogger } from '../log.js';
import type { RunningServer } from '../server/index.js';
import { defaultPorts } from '../server/ports.js';
import { parsePort } from './options.js';

export interface ServeFlags {
  host: string;
  port?: number;
  mountPort?: number;
  portmapPort?: number;
  stateDir?: string;
  metrics?: string;
  logLevel: string;
  exports?: string;
  localio: boolean;
  localioRegistry?: string;
}

export function serveCommand(program: Command): void {
  const d = defaultPorts();
  program
    .command('serve')
    .description('serve DIR (default ./export) over NFSv3, with MOUNT and a portmapper')
    .argument('[dir]', 'directory to export (created if missing; default ./export)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', `NFS port (default ${d.nfs})`, parsePort)
    .option('--mount-port <n>', `MOUNT port (default ${d.mount})`, parsePort)
    .option('--portmap-port <n>', `portmapper port, 0 disables it (default ${d.portmap})`, parsePort)
    .option('--state-dir <dir>', 'where handle secrets and the boot counter are kept')
    .option('--exports <file>', 'exports(5) file (instead of DIR)')
    .option('--metrics <host:port>', 'serve Prometheus metrics on this address')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .option('--no-localio', 'do not offer LOCALIO to co-located clients')
    .option('--localio-registry <dir>', 'LOCALIO registry directory shared with co-located clients (default: $TSNFS_LOCALIO_REGISTRY, /run/tsnfs/localio as root)')
    .action(async (dir: string | undefined, flags: ServeFlags) => {
      if (dir !== undefined && flags.exports !== undefined) throw new Error('give DIR or --exports, not both');
      const logger = createLogger(flags.logLevel);
      // Loaded here, not at start: the client verbs do not need the server.
      const { startServer } = await import('../server/index.js');
      const running = await startServer({
        dir: flags.exports !== undefined ? undefined : (dir ?? 'export'),
        host: flags.host,
        nfsPort: flags.port,
        mountPort: flags.mountPort,
        portmapPort: flags.portmapPort,
        stateDir: flags.stateDir,
        exportsFile: flags.exports,
        metrics: flags.metrics,
        localio: flags.localio,
        localioRegistry: flags.localioRegistry,
        logger,
      });
      printHowToReach(running);
      const stop = (): void => {
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

function printHowToReach(s: RunningServer): void {
  const lines = [`tsnfs ${s.version} serving on ${s.host}:`];
  if (s.portmapPort) lines.push(`  portmapper  ${s.host}:${s.portmapPort}${s.portmapPort === 111 ? `   (rpcinfo -p ${s.host})` : ''}`);
  for (const line of s.describe()) lines.push(`  ${line}`);
  process.stdout.write(lines.join('\n') + '\n');
}
