// Structured logs through pino; libraries take a Logger so embedders choose.

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = 'info'): Logger {
  return pino({ name: 'tsnfs', level }, pino.destination(2));
}

/** For library use without logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
