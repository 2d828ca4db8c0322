// A counting semaphore with a FIFO queue: bounds the WRITEs (or READs) a
// client keeps in flight.

export class Semaphore {
  private free: number;
  private readonly queue: Array<() => void> = [];

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`semaphore capacity must be >= 1, got ${capacity}`);
    this.free = capacity;
  }

  get inUse(): number {
    return this.capacity - this.free;
  }

  tryAcquire(): boolean {
    if (this.free > 0 && this.queue.length === 0) {
      this.free--;
      return true;
    }
    return false;
  }

  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.queue.push(resolve));
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.free++;
  }
}
