#!/usr/bin/env node
// Builds the optional native addon (src/native) with node-gyp.
//
// Run by `npm ci` / `npm install` (the package's install script) and safe to
// run by hand. It never fails: when the addon cannot be built or loaded it
// prints one line saying why and exits 0, and tsnfs uses its pure-TypeScript
// fallbacks (no LOCALIO descriptor passing; IO on the libuv threadpool).
//
//   node scripts/build-native.mjs            build quietly
//   node scripts/build-native.mjs --verbose  show node-gyp's output
//   TSNFS_SKIP_NATIVE_BUILD=1                skip the build
//
// node-gyp is the one bundled with npm (npm passes its path to install
// scripts), else npm's copy next to this node, else one on PATH. Node's
// headers come from npm's `nodedir` setting, else from this node's own
// install prefix (<prefix>/include/node), so nothing is downloaded when
// they are present.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'src', 'native');
const addonPath = path.join(srcDir, 'build', 'Release', 'tsnfs_native.node');
const verbose = process.argv.includes('--verbose') || process.env.TSNFS_NATIVE_BUILD_VERBOSE === '1';
const EXPECTED_ABI = 1; // TSNFS_NATIVE_ABI in src/native/common.h

function fallback(reason) {
  console.log(`tsnfs: native addon not built (${reason}); LOCALIO fd passing unavailable, using fallbacks`);
  process.exit(0);
}

/** node-gyp's entry script, or a command on PATH. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    // .../npm/bin/npm-cli.js -> .../npm/node_modules/node-gyp/bin/node-gyp.js
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(createRequire(path.join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not a dependency of the project
  }
  for (const c of candidates) if (c.endsWith('.js') && existsSync(c)) return { cmd: process.execPath, pre: [c] };
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return { cmd: which.stdout.trim(), pre: [] };
  return undefined;
}

/** A directory with include/node/common.gypi for --nodedir, if there is one. */
function findNodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured) return configured;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) && existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) {
    return prefix;
  }
  return undefined; // node-gyp will look in its cache, or download
}

/** The line of node-gyp's output that best says what went wrong. */
function lastError(text) {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const first = (re) => lines.find((l) => re.test(l));
  const pick =
    first(/:\d+(:\d+)?: (fatal )?error: /) ?? // the compiler's first error
    first(/^gyp: /) ?? // gyp's own complaint (missing headers...)
    [...lines].reverse().find((l) => /^[A-Za-z.]+(Error|Exception): /.test(l)) ?? // a Python traceback's last line
    first(/^gyp ERR! stack Error: /) ??
    first(/^gyp ERR! /) ??
    lines[lines.length - 1];
  return (pick ?? 'unknown error').replace(/\s+/g, ' ').slice(0, 200);
}

function main() {
  if (process.env.TSNFS_SKIP_NATIVE_BUILD === '1') fallback('skipped by TSNFS_SKIP_NATIVE_BUILD=1');
  if (process.platform !== 'linux') fallback(`not supported on ${process.platform}`);
  if (!existsSync(path.join(srcDir, 'binding.gyp'))) fallback('src/native/binding.gyp is missing');
  const gyp = findNodeGyp();
  if (!gyp) fallback('node-gyp not found');
  const nodedir = findNodeDir();
  const args = [...gyp.pre, 'rebuild', '--release'];
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const started = Date.now();
  const r = spawnSync(gyp.cmd, args, {
    cwd: srcDir,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : 'pipe',
    timeout: 10 * 60 * 1000,
    env: { ...process.env, npm_config_loglevel: verbose ? process.env.npm_config_loglevel : 'error' },
  });
  if (r.error) fallback(`node-gyp did not run: ${r.error.message}`);
  if (r.status !== 0) fallback(verbose ? `node-gyp exited with ${r.status}` : lastError(`${r.stdout ?? ''}\n${r.stderr ?? ''}`));
  if (!existsSync(addonPath)) fallback('node-gyp produced no tsnfs_native.node');

  // It built: check that it loads in a fresh process and is this version.
  const check = spawnSync(
    process.execPath,
    ['-e', `const m = require(${JSON.stringify(addonPath)}); if (m.abi !== ${EXPECTED_ABI}) { console.error('interface ' + m.abi); process.exit(3); }`],
    { encoding: 'utf8', timeout: 60 * 1000 },
  );
  if (check.status !== 0) fallback(`built but does not load: ${lastError(check.stderr ?? '')}`);
  console.log(`tsnfs: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s (${path.relative(root, addonPath)})`);
}

try {
  main();
} catch (err) {
  fallback(err instanceof Error ? err.message : String(err));
}
process.exit(0);
