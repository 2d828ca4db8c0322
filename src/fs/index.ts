export * from './backend.js';
export { toFsError } from './errors.js';
export { LocalBackend, type LocalBackendOptions } from './local.js';
export { MemoryBackend, type MemoryBackendOptions } from './memory.js';
