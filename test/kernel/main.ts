// Runs the kernel-client checks against an NFSv3 server that is already running:
//   node dist/test/kernel/main.js --port P --mount-port M --export /PATH [--timeout SECONDS] [--files N] [--verbose]
// Prints one line per step and exits 0 when every step passed, 1 otherwise, 2 on bad usage.

import { parseArgs } from 'node:util';
import { missingKernelTools, runKernelClient } from './run.js';

const USAGE =
  'usage: main.js --port P --mount-port M --export /PATH [--host 127.0.0.1] [--timeout SECONDS] [--files N] [--verbose]';

async function main(argv: string[]): Promise<number> {
  // node --test runs every file under dist/test/; without arguments there is nothing to do.
  if (argv.length === 0 && process.env.NODE_TEST_CONTEXT) return 0;

  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        'mount-port': { type: 'string' },
        export: { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        timeout: { type: 'string', default: '600' },
        files: { type: 'string' },
        verbose: { type: 'boolean', short: 'v', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.port === undefined || values.export === undefined) {
    console.error(USAGE);
    return 2;
  }
  const missing = missingKernelTools();
  if (missing) {
    console.error(`skip: ${missing}`);
    return 2;
  }
  const nfsPort = Number(values.port);
  const mountPort = Number(values['mount-port'] ?? values.port);
  const timeoutMs = Number(values.timeout) * 1000;
  const files = values.files === undefined ? undefined : Number(values.files);

  const result = await runKernelClient({
    host: values.host,
    nfsPort,
    mountPort,
    exportPath: values.export,
    timeoutMs,
    files,
    onConsole: values.verbose ? (s) => process.stderr.write(s) : undefined,
  });
  for (const s of result.steps) console.log(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name}${s.detail ? `: ${s.detail}` : ''}`);
  console.log(
    `${result.passed ? 'PASS' : 'FAIL'} in ${(result.durationMs / 1000).toFixed(1)} s` +
      (result.timedOut ? ' (timed out)' : '') +
      (result.verdict === null ? ' (no verdict from the guest)' : ''),
  );
  if (!result.passed && !values.verbose) {
    console.log('--- console (last 60 lines) ---');
    console.log(result.console.split(/\r?\n/).slice(-60).join('\n'));
  }
  return result.passed ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exitCode = 1;
  },
);
