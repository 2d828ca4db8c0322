// Structured logs through pino; libraries take a Logger so embedders choose.
//
// pino is loaded on first use, not on import: a client that logs nothing
// (every CLI verb but serve) starts a tenth faster without it.

import { createRequire } from 'node:module';
import type { Logger } from 'pino';

export type { Logger };

const requireCjs = createRequire(import.meta.url);

export function createLogger(level = 'info'): Logger {
  const { pino } = requireCjs('pino') as typeof import('pino');
  return pino({ name: 'tsnfs', level }, pino.destination(2));
}

const ignore = (): void => undefined;

/**
 * For library use without logs: every level a no-op. (tsnfs calls only
 * the level methods of its loggers, and child().)
 */
export const silentLogger: Logger = {
  level: 'silent',
  trace: ignore,
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
  fatal: ignore,
  silent: ignore,
  isLevelEnabled: () => false,
  child: () => silentLogger,
} as unknown as Logger;
