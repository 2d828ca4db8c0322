export { XdrReader, XdrError, splitU64 } from './reader.js';
export { XdrWriter } from './writer.js';
