export * from './message.js';
export * from './errors.js';
export { RecordDecoder, RecordTooLargeError, recordMark } from './record.js';
export { RpcServer } from './server.js';
export type { CallContext, CallRecord, Encoder, Handler, ProcedureDef, ProgramVersion, ReplyCache, RpcConnectionInfo, RpcServerOptions } from './server.js';
export { RpcClient } from './client.js';
export type { CallOptions, ResultDecoder, RpcClientOptions } from './client.js';
