export { XdrReader, XdrError, splitU64 } from './reader.js';
export { XdrWriter } from './writer.js';
export { decodeBytes, encodeBytes, hasEscapedBytes } from './bytes-string.js';
