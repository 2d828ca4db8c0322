// nfs:// URLs in libnfs's format:
//
//   nfs://host[:port]/export/path?version=3&nfsport=P&mountport=M&uid=U&gid=G&readahead=N
//
// As in libnfs, the path is used as written (no percent-decoding), the port in
// the authority is the NFS port, and with both nfsport and mountport given
// the portmapper is never asked. The other arguments libnfs accepts are
// recognised (most have no effect here); tsnfs adds a few of its own (soft,
// timeo, rsize, wsize, portmapport, acregmin, acregmax, acdirmin, acdirmax,
// actimeo, noac, localio, localio_read, localio_write). An unknown argument
// is an error, so a typo does not pass silently.

import { isCacheMode, type CacheMode } from '../localio/engine.js';

export interface NfsUrl {
  host: string;
  /** The path to mount, then to look up inside the export; always starts with '/'. */
  path: string;
  /** NFS port (`nfsport`, or the port of the authority). */
  nfsPort?: number;
  /** MOUNT port (`mountport`). */
  mountPort?: number;
  /** Portmapper port to ask (`portmapport`, default 111). */
  portmapPort?: number;
  uid?: number;
  gid?: number;
  /** Read-ahead window in bytes (libnfs `readahead`). */
  readahead?: number;
  rsize?: number;
  wsize?: number;
  /** `soft` (or `hard=0`): calls fail after `timeoMs` instead of retrying forever. */
  soft?: boolean;
  /** `timeo`, in tenths of a second as in mount(8), converted to ms. */
  timeoMs?: number;
  /** Attribute cache bounds in seconds (mount(8)'s names). */
  acregmin?: number;
  acregmax?: number;
  acdirmin?: number;
  acdirmax?: number;
  /** `dircache=0` turns the lookup cache off. */
  lookupCache?: boolean;
  /** `localio=0` keeps file data on RPC even when the server is on this host. */
  localio?: boolean;
  /** `localio_read=`, `localio_write=`: LOCALIO's cache mode per direction (buffered, dontcache, direct). */
  localioRead?: CacheMode;
  localioWrite?: CacheMode;
  /** Every argument as given. */
  params: Record<string, string>;
}

/** libnfs arguments accepted for compatibility that change nothing here. */
const IGNORED = new Set(['pagecache', 'debug', 'auto-traverse-mounts', 'autoreconnect', 'tcp-syncnt', 'if', 'retrans', 'readdir-buffer']);

const NUMERIC = /^[0-9]+$/;

function uint(name: string, v: string, max = 0xffffffff): number {
  if (!NUMERIC.test(v)) throw new TypeError(`nfs URL: ${name}=${v} is not a non-negative integer`);
  const n = Number(v);
  if (n > max) throw new TypeError(`nfs URL: ${name}=${v} is out of range`);
  return n;
}

function port(name: string, v: string): number {
  const n = uint(name, v, 65535);
  if (n === 0) throw new TypeError(`nfs URL: ${name}=0 is not a port`);
  return n;
}

function flag(name: string, v: string): boolean {
  if (v === '' || v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '0' || v === 'false' || v === 'no') return false;
  throw new TypeError(`nfs URL: ${name}=${v} is not a boolean`);
}

function cacheMode(name: string, v: string): CacheMode {
  if (!isCacheMode(v)) throw new TypeError(`nfs URL: ${name}=${v} is not a cache mode (buffered, dontcache or direct)`);
  return v;
}

/** Parse an nfs:// URL; throws TypeError when it is malformed. */
export function parseNfsUrl(url: string): NfsUrl {
  const m = /^nfs:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url);
  if (!m) throw new TypeError(`not an nfs:// URL: ${url}`);
  let authority = m[1]!;
  const at = authority.lastIndexOf('@');
  if (at >= 0) authority = authority.slice(at + 1); // libnfs ignores a user part too
  let host: string;
  let authPort: string | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) throw new TypeError(`nfs URL: unterminated IPv6 address in ${url}`);
    host = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    if (rest.startsWith(':')) authPort = rest.slice(1);
    else if (rest !== '') throw new TypeError(`nfs URL: bad authority ${authority}`);
  } else {
    const colon = authority.indexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    if (colon >= 0) authPort = authority.slice(colon + 1);
  }
  if (host === '') throw new TypeError(`nfs URL without a host: ${url}`);
  const out: NfsUrl = { host, path: m[2] || '/', params: {} };
  if (authPort !== undefined && authPort !== '') out.nfsPort = port('port', authPort);

  for (const part of (m[3] ?? '').split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).toLowerCase();
    const v = eq < 0 ? '' : part.slice(eq + 1);
    out.params[key] = v;
    switch (key) {
      case 'version':
        if (v !== '3') throw new TypeError(`nfs URL: version=${v} is not supported (only NFSv3)`);
        break;
      case 'nfsport':
        out.nfsPort = port(key, v);
        break;
      case 'mountport':
        out.mountPort = port(key, v);
        break;
      case 'portmapport':
        out.portmapPort = port(key, v);
        break;
      case 'uid':
        out.uid = uint(key, v);
        break;
      case 'gid':
        out.gid = uint(key, v);
        break;
      case 'readahead':
        out.readahead = uint(key, v);
        break;
      case 'rsize':
        out.rsize = uint(key, v);
        break;
      case 'wsize':
        out.wsize = uint(key, v);
        break;
      case 'soft':
        out.soft = flag(key, v);
        break;
      case 'hard':
        out.soft = !flag(key, v);
        break;
      case 'timeo':
        out.timeoMs = uint(key, v) * 100;
        break;
      case 'acregmin':
      case 'acregmax':
      case 'acdirmin':
      case 'acdirmax':
        out[key] = uint(key, v);
        break;
      case 'actimeo': {
        const n = uint(key, v);
        out.acregmin = out.acregmax = out.acdirmin = out.acdirmax = n;
        break;
      }
      case 'noac':
        if (flag(key, v)) out.acregmin = out.acregmax = out.acdirmin = out.acdirmax = 0;
        break;
      case 'dircache':
        out.lookupCache = flag(key, v);
        break;
      case 'localio':
        out.localio = flag(key, v);
        break;
      case 'localio_read':
        out.localioRead = cacheMode(key, v);
        break;
      case 'localio_write':
        out.localioWrite = cacheMode(key, v);
        break;
      case 'sec':
        if (v !== 'sys') throw new TypeError(`nfs URL: sec=${v} is not supported (only AUTH_SYS)`);
        break;
      default:
        if (!IGNORED.has(key)) throw new TypeError(`nfs URL: unknown argument ${key}`);
    }
  }
  return out;
}

/** Format an nfs:// URL (the inverse of parseNfsUrl for the fields it sets). */
export function formatNfsUrl(u: { host: string; path: string; nfsPort?: number; mountPort?: number; uid?: number; gid?: number; params?: Record<string, string | number> }): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  const q: string[] = ['version=3'];
  if (u.nfsPort !== undefined) q.push(`nfsport=${u.nfsPort}`);
  if (u.mountPort !== undefined) q.push(`mountport=${u.mountPort}`);
  if (u.uid !== undefined) q.push(`uid=${u.uid}`);
  if (u.gid !== undefined) q.push(`gid=${u.gid}`);
  for (const [k, v] of Object.entries(u.params ?? {})) q.push(`${k}=${v}`);
  const path = u.path.startsWith('/') ? u.path : `/${u.path}`;
  return `nfs://${host}${path}?${q.join('&')}`;
}
