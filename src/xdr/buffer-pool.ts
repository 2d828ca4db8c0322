// Reusable large buffers: READ data (filled by the backend, written to the
// socket by reference) and request records that arrived in pieces (a 1 MiB
// WRITE). A fresh 1 MiB buffer per call costs more than the copy that fills
// it: new pages for the kernel to fault in and zero, and external memory
// that drives V8 into a full GC every few dozen calls.
//
// Buffers come in size classes and are handed out as views of a class-sized
// slab. Only idle slabs are bounded: when a class is empty a new slab is
// made, and one given back to a full class is left to the garbage
// collector. A buffer nobody gives back is likewise just collected, so
// giving back is an optimisation, never an obligation.

export interface PooledBuffer {
  /** Exactly the size asked for; contents undefined. */
  readonly buf: Buffer;
  /** Gives the memory back: call once nothing uses `buf` any more. Later calls do nothing. */
  readonly release: () => void;
}

export class BufferPool {
  private readonly idle: Buffer[][];

  /**
   * `classes`: slab sizes, ascending; sizes past the largest are not pooled.
   * `maxIdle`: slabs kept per class.
   */
  constructor(private readonly classes: readonly number[], private readonly maxIdle = 16) {
    this.idle = classes.map(() => []);
  }

  take(n: number): PooledBuffer {
    const c = this.classes.findIndex((size) => n <= size);
    if (c < 0) return { buf: Buffer.allocUnsafe(n), release: noop };
    const idle = this.idle[c]!;
    const slab = idle.pop() ?? Buffer.allocUnsafeSlow(this.classes[c]!);
    let given = false;
    return {
      buf: slab.subarray(0, n),
      release: () => {
        if (given) return;
        given = true;
        if (idle.length < this.maxIdle) idle.push(slab);
      },
    };
  }

  /** Idle slabs held, for tests. */
  get idleCount(): number {
    return this.idle.reduce((n, c) => n + c.length, 0);
  }
}

function noop(): void {}

/**
 * Record buffers for an RPC end: from `min` bytes up they come from a
 * BufferPool whose classes are powers of two from `min` (plus `slack`) up
 * to `max`, and each remembers its release, so whoever gets the record
 * later can give it back (`releaseOf`); smaller ones are plain buffers.
 */
export class RecordBuffers {
  private readonly pool: BufferPool;
  private readonly releases = new WeakMap<Buffer, () => void>();

  constructor(private readonly min: number, max: number, slack = 0) {
    const classes: number[] = [];
    for (let size = min; size + slack < max; size *= 2) classes.push(size + slack);
    classes.push(max);
    this.pool = new BufferPool(classes);
  }

  /** For RecordDecoder. */
  readonly alloc = (n: number): Buffer => {
    if (n < this.min) return Buffer.allocUnsafe(n);
    const { buf, release } = this.pool.take(n);
    this.releases.set(buf, release);
    return buf;
  };

  /** The release of a buffer made by `alloc`, if it is pooled. */
  releaseOf(buf: Buffer): (() => void) | undefined {
    return this.releases.get(buf);
  }
}
