// Typed errors: one class per way an RPC can fail, so callers can branch on
// `instanceof` (or on `code`) instead of parsing messages.

import { AcceptStat, type AuthStat } from './message.js';

export class RpcError extends Error {
  override name = 'RpcError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The server does not serve the program (accept_stat PROG_UNAVAIL). */
export class RpcProgUnavailError extends RpcError {
  override name = 'RpcProgUnavailError';
  constructor(prog: number) {
    super('PROG_UNAVAIL', `program ${prog} unavailable`);
  }
}

/** The server serves the program but not this version. */
export class RpcProgMismatchError extends RpcError {
  override name = 'RpcProgMismatchError';
  constructor(readonly low: number, readonly high: number) {
    super('PROG_MISMATCH', `program version mismatch: server supports ${low}..${high}`);
  }
}

export class RpcProcUnavailError extends RpcError {
  override name = 'RpcProcUnavailError';
  constructor(proc: number) {
    super('PROC_UNAVAIL', `procedure ${proc} unavailable`);
  }
}

export class RpcGarbageArgsError extends RpcError {
  override name = 'RpcGarbageArgsError';
  constructor() {
    super('GARBAGE_ARGS', 'server could not decode the arguments');
  }
}

export class RpcSystemError extends RpcError {
  override name = 'RpcSystemError';
  constructor() {
    super('SYSTEM_ERR', 'server system error');
  }
}

export class RpcMismatchError extends RpcError {
  override name = 'RpcMismatchError';
  constructor(readonly low: number, readonly high: number) {
    super('RPC_MISMATCH', `RPC version mismatch: server supports ${low}..${high}`);
  }
}

export class RpcAuthError extends RpcError {
  override name = 'RpcAuthError';
  constructor(readonly stat: AuthStat) {
    super('AUTH_ERROR', `authentication error (auth_stat ${stat})`);
  }
}

export class RpcTimeoutError extends RpcError {
  override name = 'RpcTimeoutError';
  constructor(ms: number) {
    super('ETIMEDOUT', `RPC timed out after ${ms} ms`);
  }
}

/** The connection failed or closed and the call cannot be retried. */
export class RpcConnectionError extends RpcError {
  override name = 'RpcConnectionError';
  constructor(message: string, override readonly cause?: unknown) {
    super('ECONNECTION', message);
  }
}

/** The server sent something that is not a valid reply. */
export class RpcProtocolError extends RpcError {
  override name = 'RpcProtocolError';
  constructor(message: string) {
    super('EPROTO', message);
  }
}

/** Map a non-SUCCESS accept_stat to its error. */
export function acceptError(stat: AcceptStat, prog: number, proc: number, mismatch?: { low: number; high: number }): RpcError {
  switch (stat) {
    case AcceptStat.PROG_UNAVAIL:
      return new RpcProgUnavailError(prog);
    case AcceptStat.PROG_MISMATCH:
      return new RpcProgMismatchError(mismatch?.low ?? 0, mismatch?.high ?? 0);
    case AcceptStat.PROC_UNAVAIL:
      return new RpcProcUnavailError(proc);
    case AcceptStat.GARBAGE_ARGS:
      return new RpcGarbageArgsError();
    default:
      return new RpcSystemError();
  }
}

/** Thrown by a procedure handler to answer with a non-SUCCESS accept_stat. */
export class RpcAcceptError extends Error {
  override name = 'RpcAcceptError';
  constructor(readonly stat: AcceptStat, message?: string) {
    super(message ?? `accept_stat ${stat}`);
  }
}
