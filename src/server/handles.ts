// NFSv3 file handles: what a client holds for every object it uses.
//
// Layout (22 + n bytes, at most 62):
//   0        version (1)
//   1..4     export id, u32 big-endian (ServerState.exportId)
//   5        n, the node id's length (0..40)
//   6..6+n   the backend's node id (opaque)
//   6+n..    tag: HMAC-SHA256(handle key, bytes 0..6+n), first 16 bytes
//
// The handle key is derived from the state secret, so handles survive a
// restart and a forged or altered handle is never resolved.
//
// Failures, per RFC 1813:
//   'badhandle' (NFS3ERR_BADHANDLE): the handle fails internal consistency
//     checks - wrong length, unknown version, inconsistent length byte. No
//     server of ours could have issued it.
//   'stale' (NFS3ERR_STALE): well formed, but the tag does not verify or the
//     export is gone. A handle from before the secret was lost is exactly
//     this, and forged ones cannot be told apart from it; STALE makes clients
//     drop the handle and look the path up again (ESTALE), where BADHANDLE
//     would surface as an obscure errno in applications.

import crypto from 'node:crypto';

export const HANDLE_VERSION = 1;
export const MAX_NODE_ID = 40;
export const TAG_BYTES = 16;
const HEADER_BYTES = 6;
export const MIN_HANDLE = HEADER_BYTES + TAG_BYTES;
export const MAX_HANDLE = MIN_HANDLE + MAX_NODE_ID;

/** nfsstat3 values for the failures. */
export const NFS3ERR_STALE = 70;
export const NFS3ERR_BADHANDLE = 10001;

export type HandleError = 'badhandle' | 'stale';

export type DecodedHandle =
  | { ok: true; exportId: number; /** A view into the handle: copy it to keep it. */ nodeId: Buffer }
  | { ok: false; error: HandleError };

export function handleErrorStatus(e: HandleError): number {
  return e === 'stale' ? NFS3ERR_STALE : NFS3ERR_BADHANDLE;
}

export interface FileHandlesOptions {
  /** Export ids currently served; a handle for another one is stale. */
  isExport?: (exportId: number) => boolean;
}

const BLOCK = 64; // SHA-256 block size

/** A key of its own, so other uses of the state secret cannot collide with handles. */
function handleKey(secret: Buffer): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), 'tsnfs file handle v1', 32));
}

/** Handle bodies whose tags are remembered (a client uses few handles at a time: its directories, its open files). */
const KNOWN_TAGS_MAX = 4096;

export class FileHandles {
  private readonly tagger: (msg: Buffer) => Buffer;
  /**
   * Tags computed before, by handle body (latin1): most calls name a handle
   * seen a moment ago (a directory, again and again), and a lookup costs a
   * fraction of the two SHA-256 runs. Keyed by the body, which is no secret;
   * the tag is still compared in constant time.
   */
  private readonly knownTags = new Map<string, Buffer>();

  constructor(secret: Buffer, private readonly opts: FileHandlesOptions = {}) {
    if (secret.length < 16) throw new RangeError('handle secret must be at least 16 bytes');
    this.tagger = makeTagger(handleKey(secret));
  }

  encodeHandle(exportId: number, nodeId: Buffer): Buffer {
    if (!Number.isInteger(exportId) || exportId < 0 || exportId > 0xffff_ffff) throw new RangeError(`bad export id ${exportId}`);
    if (nodeId.length > MAX_NODE_ID) throw new RangeError(`node id of ${nodeId.length} bytes; at most ${MAX_NODE_ID}`);
    const n = nodeId.length;
    const fh = Buffer.allocUnsafe(MIN_HANDLE + n);
    fh[0] = HANDLE_VERSION;
    fh.writeUInt32BE(exportId, 1);
    fh[5] = n;
    nodeId.copy(fh, HEADER_BYTES);
    this.tagOf(fh.subarray(0, HEADER_BYTES + n)).copy(fh, HEADER_BYTES + n);
    return fh;
  }

  /** The tag of a handle body (TAG_BYTES long), from knownTags when it is there. */
  private tagOf(body: Buffer): Buffer {
    const key = body.toString('latin1');
    let tag = this.knownTags.get(key);
    if (tag) return tag;
    tag = this.tagger(body).subarray(0, TAG_BYTES);
    // Emptied when full: dropping the oldest one by one would walk V8's
    // holes at the front of the Map every time; refilling costs one tag each.
    if (this.knownTags.size >= KNOWN_TAGS_MAX) this.knownTags.clear();
    this.knownTags.set(key, tag);
    return tag;
  }

  decodeHandle(fh: Buffer): DecodedHandle {
    if (fh.length < MIN_HANDLE || fh.length > MAX_HANDLE || fh[0] !== HANDLE_VERSION) return BAD;
    const n = fh[5]!;
    if (fh.length !== MIN_HANDLE + n) return BAD;
    const body = HEADER_BYTES + n;
    const tag = this.tagOf(fh.subarray(0, body));
    if (!crypto.timingSafeEqual(tag, fh.subarray(body))) return STALE;
    const exportId = fh.readUInt32BE(1);
    if (this.opts.isExport && !this.opts.isExport(exportId)) return STALE;
    return { ok: true, exportId, nodeId: fh.subarray(HEADER_BYTES, body) };
  }
}

const BAD: DecodedHandle = Object.freeze({ ok: false, error: 'badhandle' });
const STALE: DecodedHandle = Object.freeze({ ok: false, error: 'stale' });

/**
 * HMAC-SHA256 with the padded keys computed once (RFC 2104). Node's one-shot
 * crypto.hash over preallocated buffers is measurably cheaper per call than
 * createHmac, which sets the key up again every time; where crypto.hash is
 * missing, createHmac with a KeyObject.
 */
function makeTagger(key: Buffer): (msg: Buffer) => Buffer {
  const oneShot = (crypto as { hash?: (alg: string, data: Buffer, enc: 'buffer') => Buffer }).hash;
  if (typeof oneShot !== 'function') {
    const ko = crypto.createSecretKey(key);
    return (msg) => crypto.createHmac('sha256', ko).update(msg).digest();
  }
  const inner = Buffer.alloc(BLOCK + HEADER_BYTES + MAX_NODE_ID);
  const outer = Buffer.alloc(BLOCK + 32);
  for (let i = 0; i < BLOCK; i++) {
    const k = i < key.length ? key[i]! : 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  return (msg) => {
    // Synchronous: the shared scratch buffers cannot be interleaved.
    msg.copy(inner, BLOCK);
    oneShot('sha256', inner.subarray(0, BLOCK + msg.length), 'buffer').copy(outer, BLOCK);
    return oneShot('sha256', outer, 'buffer');
  };
}

/** Plain HMAC-SHA256 tag of a handle body, for tests that cross-check the fast path. */
export function referenceTag(secret: Buffer, body: Buffer): Buffer {
  return crypto.createHmac('sha256', handleKey(secret)).update(body).digest().subarray(0, TAG_BYTES);
}
