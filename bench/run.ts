// npm run bench [name...] — runs the named benchmarks one after another
// (each in its own process, so one's memory and threads never colour the
// next), or lists them when no name is given. `npm run bench all` runs
// every one. Each benchmark prints its own table of ratios.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHMARKS: Record<string, string> = {
  rpc: 'NULL round trips/s vs a raw echo server with the same framing',
  server: 'tsnfs vs nfs-ganesha: 4 KiB random READ, 1 MiB READ/WRITE, metadata mix',
  client: 'the tsnfs client vs libnfs nfs-cp on the tsnfs server; RSS of a large write-back write',
  localio: 'file data with LOCALIO on and off vs plain pread/pwrite; engine cache modes vs fio',
  backend: 'the local backend\'s metadata loop: CPU per round with lstat/fstat through the addon vs Node',
};

const names = process.argv.slice(2);
if (names.length === 0) {
  console.log('usage: npm run bench <name...> | all\n');
  for (const [name, what] of Object.entries(BENCHMARKS)) console.log(`  ${name.padEnd(8)} ${what}`);
  process.exit(0);
}

const selected = names.includes('all') ? Object.keys(BENCHMARKS) : names;
for (const name of selected) {
  if (!(name in BENCHMARKS)) {
    console.error(`npm run bench: unknown benchmark '${name}' (known: ${Object.keys(BENCHMARKS).join(', ')})`);
    process.exit(2);
  }
}
for (const name of selected) {
  console.log(`\n== bench:${name} ==`);
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  const { status, signal } = spawnSync(process.execPath, [script], { stdio: 'inherit' });
  if (status !== 0) {
    console.error(`bench:${name} failed (${signal ?? `exit ${status}`})`);
    process.exit(status ?? 1);
  }
}
