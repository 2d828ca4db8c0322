// tsnfs native layer: the optional C addon (src/native/*.c, built by
// scripts/build-native.mjs) and the pure-TypeScript fallbacks used when it
// is absent or disabled (TSNFS_NO_NATIVE=1).
//
//   what                          with the addon                   without
//   descriptor passing (LOCALIO)  FdListener / FdChannel, SCM_RIGHTS  unavailable: LOCALIO off
//   peerCred                      SO_PEERCRED                       unavailable
//   statxDioAlign                 statx STATX_DIOALIGN              zeros (buffered IO)
//   setODirect / isODirect        fcntl                             false / undefined
//   openODirect                   (pure TS: fs.constants.O_DIRECT)  same
//   allocAligned                  posix_memalign                    Buffer.alloc, unaligned
//   IoEngine                      dedicated pthreads, preadv2/      fs.read/fs.write on the
//                                 pwritev2 + RWF_* flags            libuv pool; dsync emulated
//
// `native` is the raw addon (or undefined); `nativeStatus()` says whether it
// is in use and why not, for `tsnfs doctor`.

export { native, nativeStatus, NATIVE_ABI, type NativeAddon, type NativeStatus } from './loader.js';
export { errnoCode, sysError } from './errors.js';
export { allocAligned, bufferAddress, dropCachedPages, isAligned, isODirect, openODirect, setODirect, statxDioAlign, type DioAlign } from './dio.js';
export {
  FdChannel,
  FdListener,
  MAX_FDS_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  ReceivedMessage,
  fdPassingAvailable,
  peerCred,
  type FdChannelEvents,
  type FdListenerEvents,
  type PeerCred,
} from './fd-channel.js';
export {
  IoEngine,
  MAX_IO_BYTES,
  MAX_IOV,
  isUnsupported,
  nowaitReadAvailable,
  readNowait,
  readNowaitBuffered,
  type IoCallback,
  type IoEngineOptions,
  type IoEngineStats,
  type IoError,
  type IoFlags,
  type IoOp,
  type IoRequest,
} from './io-engine.js';
