// Memory management tuning for a serving process: V8's heap, and the C heap
// under it.
//
// V8 sets the old generation's allocation limit at about 2.5 times the live
// heap, and starts a full mark-compact whenever the room left under that
// limit is no larger than the young generation (16 MiB once it has grown,
// which it does under any steady load). A server's live heap is small, about
// 8 MiB, so its limit sits near 20-24 MiB: streaming data in (every socket
// read is a new 64 KiB buffer) then makes V8 mark and compact 30 to 60 times
// a second, each time finding the same 8 MiB alive. Measured with 1 MiB
// WRITEs, 4 in flight: about 60 full GCs a second, half the server's CPU.
//
// --heap-growing-percent=400 sets the factor to 5 (limit 40 MiB for 8 MiB
// live): the storm stops (2 full GCs in 3 s). V8 reads the flag each time it
// computes a limit, so setting it at run time takes effect, and its own
// memory-pressure modes (near the heap limit, memory reducer) still cap the
// growth. A value the process was started with (command line, NODE_OPTIONS)
// is left alone.
//
// The C heap: glibc's malloc gives the top of its heap back to the kernel
// (trims it) whenever more than 128 KiB is free there, until the first time
// a large block it had mmap'd is freed; then it raises that threshold to
// twice the block's size (its "dynamic mmap threshold"). Socket reads free
// dozens of 64 KiB buffers at every young GC, so until then every scavenge
// trims the heap and the next reads fault fresh pages back in: streaming
// WRITEs ran at a third of their speed for the first 3-8 s of a server's
// life (record buffers are pooled, so no large block came free sooner).
// Allocating and dropping one 16 MiB buffer makes glibc adjust at once
// (threshold 16 MiB, trim beyond 32 MiB free). It is never touched, so it
// costs no memory; where malloc is not glibc's it is only an allocation.

import v8 from 'node:v8';

const MALLOC_PRIME = 16 * 1024 * 1024;

const FLAG = 'heap-growing-percent';
const PERCENT = 400;
let done = false;

export function tuneGcForServing(): void {
  if (done) return;
  done = true;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.replace(/_/g, '-').startsWith(`--${FLAG}`));
  if (!given) v8.setFlagsFromString(`--${FLAG}=${PERCENT}`);
  // Freed by the next young GC.
  Buffer.allocUnsafeSlow(MALLOC_PRIME);
}
