#!/usr/bin/env node
// The tsnfs command: `serve` runs the server; client verbs and tools join it.

import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serveCommand } from './serve.js';

const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tsnfs')
    .description('A userspace NFSv3 server and client; co-located clients bypass the network (LOCALIO).')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError();
  serveCommand(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`tsnfs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
