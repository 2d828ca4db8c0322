// Garbage collector tuning for a serving process.
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

import v8 from 'node:v8';

const FLAG = 'heap-growing-percent';
const PERCENT = 400;
let done = false;

export function tuneGcForServing(): void {
  if (done) return;
  done = true;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.replace(/_/g, '-').startsWith(`--${FLAG}`));
  if (!given) v8.setFlagsFromString(`--${FLAG}=${PERCENT}`);
}
