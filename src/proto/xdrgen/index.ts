// xdrgen: generates TypeScript types and codecs from XDR specifications
// (spec/*.x). See main.ts for the command line.

import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { emit } from './emit.js';
import { analyze } from './model.js';
import { parse } from './parser.js';

export { XdrSpecError } from './lexer.js';
export { parse } from './parser.js';
export { analyze } from './model.js';

/**
 * Generates the module for one spec. `specPath` is the name written in the
 * header and in error messages (spec/nfs3.x).
 */
export function generate(source: string, specPath: string): string {
  return emit(analyze(parse(source, specPath)), specPath);
}

/** The generated file name for a spec: nfs3.x -> nfs3.gen.ts. */
export function outputName(specFile: string): string {
  return path.basename(specFile).replace(/\.x$/, '') + '.gen.ts';
}

export interface GenerateAllOptions {
  /** Directory holding the *.x files. */
  specDir: string;
  /** Directory the *.gen.ts files are written to. */
  outDir: string;
  /** How the spec directory is named in generated headers (default 'spec'). */
  specLabel?: string;
}

/** Generates a module for every *.x file of `specDir`; returns the files written. */
export function generateAll(opts: GenerateAllOptions): string[] {
  const label = opts.specLabel ?? 'spec';
  const specs = readdirSync(opts.specDir)
    .filter((f) => f.endsWith('.x'))
    .sort();
  mkdirSync(opts.outDir, { recursive: true });
  const written: string[] = [];
  for (const f of specs) {
    const code = generate(readFileSync(path.join(opts.specDir, f), 'utf8'), `${label}/${f}`);
    const out = path.join(opts.outDir, outputName(f));
    writeFileSync(out, code);
    written.push(out);
  }
  return written;
}
