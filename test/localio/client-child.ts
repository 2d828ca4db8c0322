// A tsnfs client in a process of its own, driven line by line: the LOCALIO
// tests run it as another user (setpriv), in another network namespace
// (ip netns exec), or without the native addon (TSNFS_NO_NATIVE=1).
//
// Each line on stdin is one JSON command; each answer is one JSON line on
// stdout, {"ok": value} or {"error": {"code", "message"}}. Buffers travel
// as {"b64": "..."}.
//
//   {"op":"connect","opts":{...ConnectOptions}}
//   {"op":"call","method":"writeFile","args":["a.txt",{"b64":"aGk="}]}
//   {"op":"open","path":"a.txt","flags":"r+"}            -> handle number
//   {"op":"hcall","h":1,"method":"write","args":[{"b64":"..."},0,3,0]}
//   {"op":"ready","timeoutMs":2000}                      -> true when local
//   {"op":"stats"}                                       -> client.stats()
//   {"op":"whoami"}                                      -> {uid, gid, pid}
//   {"op":"fhio","name":"a.txt","kind":"read"|"write"|"commit",...}
//        one transport call on a file of the mount's root, looked up by
//        name: -> {transport, status (0 or the nfsstat3), count, committed}
//   {"op":"fds"}                                         -> what this process has open
//   {"op":"block","fifo":"/path","count":4}              opens of a FIFO nobody writes:
//        each holds a libuv threadpool thread until a writer opens it
//   {"op":"poolcheck","timeoutMs":500}                   -> {done, ms}: whether an fs.stat
//        (libuv threadpool) finished within the time
//   {"op":"unblocked"}                                   -> ms: waits for the blocked opens
//   {"op":"fill","path":"f","total":N,"span":S,"chunk":C,"seed":1}
//        writes `total` bytes of the pattern (engine.ts) through a handle,
//        passes over [0, span), chunk bytes a write -> {ms, passes}
//   {"op":"load","writers":6,"readers":6,"ms":2000,"span":S,"readPath":"r"}
//        writers of 1 MiB over [0, span) of files of their own, readers of
//        1 MiB at random places of readPath, and meanwhile GETATTRs of the
//        root one after another -> {written, read, getattrMs: [...]}
//   {"op":"exit"}

import fs from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, NfsStatusError, type NfsClient, type NfsFileHandle } from '../../src/client/index.js';
import { patternBase, patternChunk } from './engine.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o['b64'] === 'string' && Object.keys(o).length === 1) return Buffer.from(o['b64'], 'base64');
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x)]));
  }
  return v;
}

function encode(v: unknown): Json {
  if (v === undefined || v === null) return null;
  if (Buffer.isBuffer(v)) return { b64: v.toString('base64') };
  if (v instanceof Uint8Array) return { b64: Buffer.from(v).toString('base64') };
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(encode);
  if (typeof v === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x !== 'function') out[k] = encode(x);
    return out;
  }
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  return String(v);
}

let client: NfsClient | undefined;
const handles = new Map<number, NfsFileHandle>();
let nextHandle = 1;
let blocked: { since: number; opens: Promise<number>[] } | undefined;

async function run(cmd: Record<string, unknown>): Promise<unknown> {
  switch (cmd['op']) {
    case 'connect':
      client = await connect(decode(cmd['opts']) as Parameters<typeof connect>[0]);
      return true;
    case 'call': {
      const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[cmd['method'] as string];
      if (typeof fn !== 'function') throw new Error(`no method ${String(cmd['method'])}`);
      return await fn.apply(client, decode(cmd['args'] ?? []) as unknown[]);
    }
    case 'open': {
      const h = await client!.open(cmd['path'] as string, (cmd['flags'] as string | undefined) ?? 'r');
      const id = nextHandle++;
      handles.set(id, h);
      return id;
    }
    case 'hcall': {
      const h = handles.get(cmd['h'] as number);
      if (!h) throw new Error(`no handle ${String(cmd['h'])}`);
      const fn = (h as unknown as Record<string, (...a: unknown[]) => unknown>)[cmd['method'] as string]!;
      const r = await fn.apply(h, decode(cmd['args'] ?? []) as unknown[]);
      if (cmd['method'] === 'close') handles.delete(cmd['h'] as number);
      // read/write answer { bytesRead | bytesWritten, buffer }: the buffer is what was read.
      return r;
    }
    case 'ready':
      return await client!.localioReady((cmd['timeoutMs'] as number | undefined) ?? 2000);
    case 'stats':
      return client!.stats();
    case 'fhio': {
      const c = client!;
      const res = await c.nfs.call('LOOKUP', { what: { dir: c.root, name: cmd['name'] as string } });
      if (res.status !== 0) return { transport: null, status: res.status };
      const fh = { data: Buffer.from(res.resok.object.data) };
      const t = c.transportFor(fh);
      try {
        if (cmd['kind'] === 'read') {
          const r = await t.read(fh, (cmd['offset'] as number | undefined) ?? 0, (cmd['count'] as number | undefined) ?? 4096);
          return { transport: t.kind, status: 0, count: r.data.length, data: r.data };
        }
        if (cmd['kind'] === 'write') {
          const data = decode(cmd['data']) as Buffer;
          const r = await t.write(fh, (cmd['offset'] as number | undefined) ?? 0, [data], data.length, ((cmd['stable'] as number | undefined) ?? 2) as 0 | 1 | 2);
          return { transport: t.kind, status: 0, count: r.count, committed: r.committed };
        }
        await t.commit(fh, 0, 0);
        return { transport: t.kind, status: 0 };
      } catch (err) {
        if (err instanceof NfsStatusError) return { transport: t.kind, status: err.status };
        throw err;
      }
    }
    case 'fds': {
      const out: string[] = [];
      for (const n of fs.readdirSync('/proc/self/fd')) {
        try {
          out.push(fs.readlinkSync(`/proc/self/fd/${n}`));
        } catch {
          // closed meanwhile
        }
      }
      return out;
    }
    case 'block': {
      const opens = Array.from(
        { length: cmd['count'] as number },
        () => new Promise<number>((resolve, reject) => fs.open(cmd['fifo'] as string, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))),
      );
      blocked = { since: Date.now(), opens };
      return true;
    }
    case 'poolcheck': {
      const start = Date.now();
      const stat = new Promise<boolean>((resolve) => fs.stat('/', () => resolve(true)));
      const timer = new Promise<boolean>((resolve) => setTimeout(resolve, cmd['timeoutMs'] as number, false));
      return { done: await Promise.race([stat, timer]), ms: Date.now() - start };
    }
    case 'unblocked': {
      const b = blocked!;
      for (const fd of await Promise.all(b.opens)) fs.closeSync(fd);
      blocked = undefined;
      return Date.now() - b.since;
    }
    case 'fill': {
      const total = cmd['total'] as number;
      const span = cmd['span'] as number;
      const chunk = cmd['chunk'] as number;
      const base = patternBase(cmd['seed'] as number, chunk);
      const buf = Buffer.allocUnsafe(chunk);
      const start = Date.now();
      const h = await client!.open(cmd['path'] as string, 'w');
      let pass = 0;
      for (let done = 0; done < total; done += chunk) {
        pass = Math.floor(done / span);
        const pos = done % span;
        await h.write(patternChunk(base, pass, pos, buf), 0, chunk, pos);
      }
      await h.close();
      return { ms: Date.now() - start, passes: pass + 1 };
    }
    case 'load': {
      const c = client!;
      const MiB = 1024 * 1024;
      const span = cmd['span'] as number;
      const chunk = Buffer.alloc(MiB, 0x5a);
      const next = (): Promise<void> => new Promise((r) => setImmediate(r)); // a cached write or read resolves at once
      let stop = false;
      let written = 0;
      let read = 0;
      const writer = async (i: number): Promise<void> => {
        const h = await c.open(`load-w${i}.bin`, 'w');
        // Quarter-MiB writes go through the write-back cache, which keeps many WRITEs in flight.
        const piece = MiB / 4;
        for (let pos = 0; !stop; pos = (pos + piece) % span, await next()) written += (await h.write(chunk, 0, piece, pos)).bytesWritten;
        await h.close();
      };
      const reader = async (): Promise<void> => {
        const h = await c.open(cmd['readPath'] as string, 'r');
        const size = (await h.stat()).size;
        const buf = Buffer.alloc(MiB);
        for (; !stop; await next()) read += (await h.read(buf, 0, MiB, Math.floor(Math.random() * (size / MiB - 1)) * MiB)).bytesRead;
        await h.close();
      };
      const load = Promise.all([...Array.from({ length: cmd['writers'] as number }, (_, i) => writer(i)), ...Array.from({ length: cmd['readers'] as number }, () => reader())]);
      const getattrMs: number[] = [];
      try {
        for (const end = Date.now() + (cmd['ms'] as number); Date.now() < end; await new Promise((r) => setTimeout(r, 2))) {
          const s = performance.now();
          await c.nfs.call('GETATTR', { object: c.root });
          getattrMs.push(performance.now() - s);
        }
      } finally {
        stop = true;
        await load;
      }
      return { written, read, getattrMs };
    }
    case 'whoami':
      return { uid: process.getuid?.(), gid: process.getgid?.(), pid: process.pid };
    case 'exit':
      await client?.close().catch(() => undefined);
      setImmediate(() => process.exit(0));
      return true;
    default:
      throw new Error(`unknown op ${String(cmd['op'])}`);
  }
}

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (line.trim() === '') return;
  chain = chain.then(async () => {
    let answer: Json;
    try {
      answer = { ok: encode(await run(JSON.parse(line) as Record<string, unknown>)) };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      answer = { error: { code: e.code ?? null, message: e.message ?? String(err) } };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
rl.on('close', () => {
  void chain.then(() => client?.close().catch(() => undefined)).then(() => process.exit(0));
});
