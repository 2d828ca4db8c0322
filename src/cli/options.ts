// Argument parsers shared by the CLI's commands.

import { InvalidArgumentError } from 'commander';
import { isCacheMode, type CacheMode } from '../localio/engine.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

/** A LOCALIO cache mode: buffered, dontcache or direct. */
export function parseCacheModeOption(value: string): CacheMode {
  if (!isCacheMode(value)) throw new InvalidArgumentError('must be buffered, dontcache or direct');
  return value;
}

/** A byte count with an optional k, m or g suffix (powers of 1024): 4k, 1m, 512. */
export function parseBytes(value: string): number {
  const m = /^([0-9]+)([kmg]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('must be a size such as 4096, 64k, 1m or 2g');
  const n = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive size');
  return n;
}
