// Node streams over NFS files, with backpressure: a read stream reads ahead
// only as far as the handle's read-ahead window and pushes views of the READ
// replies (no copy; the chunks are the consumer's to read, not to modify in
// place); a write stream's write callback fires once the chunk is in
// the write-back cache, so a writer faster than the server waits at the dirty
// limit, and 'finish' comes after the data is committed.

import { Readable, Writable } from 'node:stream';
import type { NfsFileHandle } from './file.js';

export interface ReadStreamOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Last byte to read, inclusive (default: to the end of the file). */
  end?: number;
  /** Bytes per chunk pushed (default 64 KiB). */
  highWaterMark?: number;
  /** Open flags (default 'r'). */
  flags?: string;
}

export interface WriteStreamOptions {
  /** Open flags (default 'w'). */
  flags?: string;
  /** Mode for a file created by the open (default 0o666, less the umask). */
  mode?: number;
  /** Byte at which to start writing (default 0, or the end with flags 'a'). */
  start?: number;
  /** Buffered bytes before write() returns false (default 1 MiB). */
  highWaterMark?: number;
}

/** A Readable of an NFS file; `open` is called when the stream is constructed. */
export class NfsReadStream extends Readable {
  private handle: NfsFileHandle | undefined;
  private pos: number;
  private readonly end: number;
  bytesRead = 0;

  constructor(private readonly opener: () => Promise<NfsFileHandle>, readonly path: string, opts: ReadStreamOptions = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 64 * 1024 });
    this.pos = opts.start ?? 0;
    this.end = opts.end ?? Infinity;
    if (this.pos < 0 || this.end < this.pos - 1) throw new RangeError(`invalid range start=${opts.start} end=${opts.end}`);
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.opener().then(
      (h) => {
        this.handle = h;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(size: number): void {
    const want = Math.min(Math.max(size, 1), this.end + 1 - this.pos);
    if (want <= 0) {
      this.push(null);
      return;
    }
    this.handle!.readChunk(this.pos, want).then(
      (chunk) => {
        if (chunk.length === 0) {
          this.push(null);
          return;
        }
        this.pos += chunk.length;
        this.bytesRead += chunk.length;
        this.push(chunk);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const h = this.handle;
    this.handle = undefined;
    if (!h) return callback(error);
    h.close().then(
      () => callback(error),
      (err: Error) => callback(error ?? err),
    );
  }
}

/** A Writable to an NFS file; 'finish' is emitted after close() wrote back and committed everything. */
export class NfsWriteStream extends Writable {
  private handle: NfsFileHandle | undefined;
  private pos: number | null;
  bytesWritten = 0;

  constructor(private readonly opener: () => Promise<NfsFileHandle>, readonly path: string, opts: WriteStreamOptions = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 1024 * 1024, decodeStrings: true });
    this.pos = opts.start ?? null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.opener().then(
      (h) => {
        this.handle = h;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.put(chunk).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    (async () => {
      for (const { chunk } of chunks) await this.put(chunk);
    })().then(() => callback(), callback);
  }

  private async put(chunk: Buffer): Promise<void> {
    const pos = this.pos;
    if (pos !== null) this.pos = pos + chunk.length;
    const { bytesWritten } = await this.handle!.write(chunk, 0, chunk.length, pos);
    this.bytesWritten += bytesWritten;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const h = this.handle;
    this.handle = undefined;
    if (!h) return callback();
    h.close().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const h = this.handle;
    this.handle = undefined;
    if (!h) return callback(error);
    h.close().then(
      () => callback(error),
      (err: Error) => callback(error ?? err),
    );
  }
}
