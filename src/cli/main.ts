#!/usr/bin/env node
// The tsnfs command: `serve` runs the server; the client verbs (ls, cat, cp,
// stat, rm, mkdir, mv, df) work on nfs:// URLs; `bench` measures the data
// path; `doctor` checks the machine.
//
// Exit status: 0 done, 1 something failed (the message says what), 2 the
// command was called wrongly (unknown option, missing argument, bad URL).

import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchCommand } from './bench.js';
import { clientVerbs } from './client-verbs.js';
import { doctorCommand } from './doctor.js';
import { UsageError } from './nfs-session.js';
import { serveCommand } from './serve.js';

const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tsnfs')
    .description('A userspace NFSv3 server and client; co-located clients bypass the network (LOCALIO).')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError()
    // Commander's own exits become errors here, so usage mistakes can exit 2 (set before the commands: they inherit it).
    .exitOverride();
  serveCommand(program);
  clientVerbs(program);
  benchCommand(program);
  doctorCommand(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other commander exit is a usage error (its message is printed already).
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`tsnfs: ${err.message}\nTry 'tsnfs --help' for more information.\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tsnfs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
