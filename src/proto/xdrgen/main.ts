#!/usr/bin/env node
// Command line of the XDR code generator:
//
//   node dist/src/proto/xdrgen/main.js [--spec-dir DIR] [--out DIR]
//
// Reads every DIR/*.x (default: the repository's spec/) and writes
// <name>.gen.ts for each into the output directory (default: src/proto/).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XdrSpecError, generateAll } from './index.js';

/** The repository root, from this file's place in src/ or in dist/src/. */
function repoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const parts = here.split(path.sep);
  const i = parts.lastIndexOf('src');
  const srcDir = parts.slice(0, i).join(path.sep) || path.sep;
  return path.basename(srcDir) === 'dist' ? path.dirname(srcDir) : srcDir;
}

/** How generated headers name the spec directory: relative to the repository (spec). */
function specLabel(root: string, specDir: string): string {
  const rel = path.relative(root, specDir);
  if (rel === '') return '.';
  if (rel.startsWith('..') || path.isAbsolute(rel)) return specDir;
  return rel.split(path.sep).join('/');
}

function main(argv: string[]): number {
  const root = repoRoot();
  let specDir = path.join(root, 'spec');
  let outDir = path.join(root, 'src', 'proto');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--spec-dir') specDir = path.resolve(next());
    else if (a === '--out') outDir = path.resolve(next());
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: xdrgen [--spec-dir DIR] [--out DIR]\n');
      return 0;
    } else throw new Error(`unknown argument ${a}`);
  }
  try {
    for (const f of generateAll({ specDir, outDir, specLabel: specLabel(root, specDir) })) process.stdout.write(`wrote ${path.relative(process.cwd(), f) || f}\n`);
  } catch (err) {
    if (err instanceof XdrSpecError) {
      process.stderr.write(`xdrgen: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`xdrgen: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
