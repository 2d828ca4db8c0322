// exports(5): which directories are served, to whom, and how callers' ids
// are mapped. The syntax is the one Linux users know:
//
//   # comment
//   /srv/data   192.168.1.0/24(rw,no_root_squash) 2001:db8::/32(ro) *(ro)
//   "/srv/my share"  -rw,sync  host1 \
//                    10.0.0.7(ro)
//
// Differences from Linux, all on the side of refusing rather than guessing:
// - Clients are matched by address only. `localhost` matches loopback
//   addresses; other hostnames, wildcards (`*.example.com`) and netgroups
//   (`@group`) are accepted so existing files parse, but never match: they
//   need reverse lookups and name services this server does not use. Such
//   rules have `canMatch: false` so the caller can warn.
// - An option list with no client before it (`/srv host (rw)`, note the
//   space) is an error; Linux silently grants it to everyone.
// - Unknown options, and options this server cannot honour (sec= other than
//   sys, mp, refer=), are errors with the line number. Options that only
//   tune Linux's kernel server (wdelay, hide, crossmnt, ...) are accepted and
//   listed in `ignored`.
//
// Precedence when several clients of one line match, as exports(5): single
// hosts, then networks, then wildcards, then netgroups, then `*`; within a
// class the first written wins.

import net from 'node:net';
import path from 'node:path';
import type { Cred } from '../fs/backend.js';

export interface ExportOptions {
  readonly rw: boolean;
  readonly rootSquash: boolean;
  readonly allSquash: boolean;
  readonly anonuid: number;
  readonly anongid: number;
  /** Require a source port below 1024. */
  readonly secure: boolean;
  readonly sync: boolean;
  readonly subtreeCheck: boolean;
  readonly fsid?: number;
}

export type ClientKind = 'host' | 'network' | 'wildcard' | 'netgroup' | 'anonymous';

/** How a client spec is tested against an address (plain data). */
export type AddressMatcher =
  | { type: 'any' }
  | { type: 'loopback' }
  | { type: 'v4'; net: number; mask: number }
  | { type: 'v6'; net: Uint8Array; prefix: number }
  | { type: 'never' };

export interface ClientRule {
  /** The client as written (`*`, `10.0.0.0/8`, `host1`, ...). */
  readonly client: string;
  readonly kind: ClientKind;
  readonly matcher: AddressMatcher;
  /** False when the spec needs name services (see the top of this file). */
  readonly canMatch: boolean;
  readonly options: ExportOptions;
  /** Options accepted without effect here. */
  readonly ignored: readonly string[];
  readonly line: number;
}

export interface Export {
  /** Absolute and normalized. */
  readonly path: string;
  readonly line: number;
  /** As written; matching applies the class precedence. */
  readonly clients: readonly ClientRule[];
}

export class ExportsError extends Error {
  override name = 'ExportsError';
  constructor(readonly line: number, readonly reason: string, source?: string) {
    super(`${source ? `${source}: ` : ''}line ${line}: ${reason}`);
  }
}

export const DEFAULT_ANON_ID = 65534;

/** What a client gets without options: exports(5)'s defaults. */
export const DEFAULT_OPTIONS: ExportOptions = Object.freeze({
  rw: false,
  rootSquash: true,
  allSquash: false,
  anonuid: DEFAULT_ANON_ID,
  anongid: DEFAULT_ANON_ID,
  secure: true,
  sync: true,
  subtreeCheck: false,
});

// ---------------------------------------------------------------- parsing

export function parseExports(text: string, source?: string): Export[] {
  const out: Export[] = [];
  const seen = new Map<string, number>();
  for (const entry of tokenize(text, source)) {
    const exp = parseEntry(entry, source);
    const first = seen.get(exp.path);
    if (first !== undefined) throw new ExportsError(exp.line, `${exp.path} is already exported on line ${first}`, source);
    seen.set(exp.path, exp.line);
    out.push(exp);
  }
  return out;
}

interface Token {
  text: string;
  line: number;
}

/** Splits the file into entries (logical lines) of whitespace-separated tokens. */
function tokenize(text: string, source?: string): Token[][] {
  const entries: Token[][] = [];
  let entry: Token[] = [];
  let tok: string | undefined;
  let tokLine = 0;
  let line = 1;
  let quoteLine = 0;
  let inQuote = false;
  const endToken = (): void => {
    if (tok !== undefined) entry.push({ text: tok, line: tokLine });
    tok = undefined;
  };
  const add = (c: string): void => {
    if (tok === undefined) {
      tok = '';
      tokLine = line;
    }
    tok += c;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuote) {
      if (c === '"') inQuote = false;
      else if (c === '\n') throw new ExportsError(quoteLine, 'unterminated quote', source);
      else add(c);
      continue;
    }
    if (c === '\\') {
      // A backslash ending a line (trailing blanks allowed) joins the next one.
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\r')) j++;
      if (j >= text.length || text[j] === '\n') {
        i = j;
        line++;
        continue;
      }
      add(c);
    } else if (c === '#') {
      endToken();
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === '\n') {
      endToken();
      if (entry.length > 0) entries.push(entry);
      entry = [];
      line++;
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      endToken();
    } else if (c === '"') {
      if (tok === undefined) add('');
      inQuote = true;
      quoteLine = line;
    } else {
      add(c);
    }
  }
  if (inQuote) throw new ExportsError(quoteLine, 'unterminated quote', source);
  endToken();
  if (entry.length > 0) entries.push(entry);
  return entries;
}

function parseEntry(tokens: Token[], source?: string): Export {
  const [first, ...rest] = tokens as [Token, ...Token[]];
  const fail = (line: number, reason: string): never => {
    throw new ExportsError(line, reason, source);
  };
  const exportPath = parseExportPath(first.text);
  if (typeof exportPath !== 'string') return fail(first.line, exportPath.error);

  let lineDefaults = DEFAULT_OPTIONS;
  let lineIgnored: string[] = [];
  if (rest[0]?.text.startsWith('-')) {
    const t = rest.shift()!;
    const parsed = parseOptions(t.text.slice(1), DEFAULT_OPTIONS);
    if ('error' in parsed) return fail(t.line, parsed.error);
    lineDefaults = parsed.options;
    lineIgnored = parsed.ignored;
  }

  const clients: ClientRule[] = [];
  for (const t of rest) {
    if (t.text.startsWith('-')) fail(t.line, `default options "${t.text}" must come right after the path`);
    if (t.text.startsWith('(')) fail(t.line, `options "${t.text}" have no client: write *${t.text} to grant everyone, or remove the space after the client`);
    const open = t.text.indexOf('(');
    let spec = t.text;
    let options = lineDefaults;
    let ignored = lineIgnored;
    if (open >= 0) {
      if (!t.text.endsWith(')') || t.text.indexOf('(', open + 1) >= 0 || t.text.indexOf(')') !== t.text.length - 1) {
        fail(t.line, `malformed option list in "${t.text}" (no spaces are allowed inside the parentheses)`);
      }
      spec = t.text.slice(0, open);
      const parsed = parseOptions(t.text.slice(open + 1, -1), lineDefaults);
      if ('error' in parsed) return fail(t.line, `${parsed.error} (client ${spec})`);
      options = parsed.options;
      ignored = [...lineIgnored, ...parsed.ignored];
    }
    const client = parseClient(spec);
    if ('error' in client) return fail(t.line, client.error);
    clients.push({ client: spec, ...client, options, ignored, line: t.line });
  }
  // A path without clients is exported to everyone with the line's defaults.
  if (clients.length === 0) clients.push({ client: '*', kind: 'anonymous', matcher: { type: 'any' }, canMatch: true, options: lineDefaults, ignored: lineIgnored, line: first.line });
  return { path: exportPath, line: first.line, clients };
}

function parseExportPath(raw: string): string | { error: string } {
  // \ooo octal escapes, as exportfs writes spaces and other specials.
  const p = raw.replace(/\\([0-3][0-7]{2})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  if (!p.startsWith('/')) return { error: `export path must be absolute: "${raw}"` };
  if (p.includes('\0')) return { error: 'export path contains a NUL byte' };
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

// ---------------------------------------------------------------- options

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Options that only tune Linux's kernel server; nothing to do here. */
const IGNORED_OPTIONS = new Set([
  'wdelay', 'no_wdelay', 'hide', 'nohide', 'crossmnt', 'secure_locks', 'insecure_locks',
  'auth_nlm', 'no_auth_nlm', 'acl', 'no_acl', 'nordirplus', 'pnfs', 'no_pnfs',
]);

const FLAGS: Record<string, Partial<Mutable<ExportOptions>>> = {
  ro: { rw: false },
  rw: { rw: true },
  root_squash: { rootSquash: true },
  no_root_squash: { rootSquash: false },
  all_squash: { allSquash: true },
  no_all_squash: { allSquash: false },
  secure: { secure: true },
  insecure: { secure: false },
  sync: { sync: true },
  async: { sync: false },
  subtree_check: { subtreeCheck: true },
  no_subtree_check: { subtreeCheck: false },
};

function parseOptions(list: string, base: ExportOptions): { options: ExportOptions; ignored: string[] } | { error: string } {
  const o: Mutable<ExportOptions> = { ...base };
  const ignored: string[] = [];
  for (const item of list.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    const flag = Object.hasOwn(FLAGS, name) ? FLAGS[name] : undefined;
    if (flag && value === undefined) {
      Object.assign(o, flag);
    } else if (IGNORED_OPTIONS.has(name) && value === undefined) {
      ignored.push(name);
    } else if (name === 'anonuid' || name === 'anongid') {
      const id = parseU32(value);
      if (id === undefined) return { error: `${name} needs a number from 0 to 4294967295, got "${value ?? ''}"` };
      o[name] = id;
    } else if (name === 'fsid') {
      const id = value === 'root' ? 0 : parseU32(value);
      if (id === undefined) return { error: `fsid needs a number, got "${value ?? ''}"` };
      o.fsid = id;
    } else if (name === 'sec') {
      if (value !== 'sys') return { error: `sec=${value ?? ''} is not supported (only sec=sys)` };
    } else {
      return { error: `unknown option "${item}"` };
    }
  }
  return { options: Object.freeze(o), ignored };
}

function parseU32(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffff_ffff ? n : undefined;
}

// ---------------------------------------------------------------- clients

type ParsedClient = { kind: ClientKind; matcher: AddressMatcher; canMatch: boolean };

const HOSTNAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i;
const HOST_PATTERN = /^[a-z0-9*?[\]\-.]+$/i;
const NEVER: AddressMatcher = Object.freeze({ type: 'never' });

function parseClient(spec: string): ParsedClient | { error: string } {
  if (spec === '*') return { kind: 'anonymous', matcher: { type: 'any' }, canMatch: true };
  if (spec.startsWith('@')) {
    if (spec.length === 1) return { error: 'empty netgroup name "@"' };
    return { kind: 'netgroup', matcher: NEVER, canMatch: false };
  }
  const slash = spec.indexOf('/');
  if (slash >= 0) return parseNetwork(spec, spec.slice(0, slash), spec.slice(slash + 1));
  const v4 = parseIPv4(spec);
  if (v4 !== undefined) return { kind: 'host', matcher: { type: 'v4', net: v4, mask: 0xffff_ffff }, canMatch: true };
  const v6 = parseIPv6(spec);
  if (v6) return { kind: 'host', matcher: { type: 'v6', net: v6, prefix: 128 }, canMatch: true };
  if (/[*?[]/.test(spec)) {
    if (!HOST_PATTERN.test(spec)) return { error: `bad client "${spec}"` };
    return { kind: 'wildcard', matcher: NEVER, canMatch: false };
  }
  if (!HOSTNAME.test(spec)) return { error: `bad client "${spec}"` };
  if (spec.toLowerCase().replace(/\.$/, '') === 'localhost') return { kind: 'host', matcher: { type: 'loopback' }, canMatch: true };
  return { kind: 'host', matcher: NEVER, canMatch: false };
}

function parseNetwork(spec: string, addr: string, len: string): ParsedClient | { error: string } {
  const v4 = parseIPv4(addr);
  if (v4 !== undefined) {
    let mask: number | undefined;
    if (/^\d{1,2}$/.test(len) && Number(len) <= 32) mask = prefixMask(Number(len));
    else {
      const m = parseIPv4(len);
      // A netmask must be contiguous ones: its complement plus one is a power of two.
      if (m !== undefined && ((~m + 1) & ~m) >>> 0 === 0) mask = m;
    }
    if (mask === undefined) return { error: `bad prefix length or netmask in "${spec}"` };
    return { kind: 'network', matcher: { type: 'v4', net: (v4 & mask) >>> 0, mask }, canMatch: true };
  }
  const v6 = parseIPv6(addr);
  if (v6) {
    if (!/^\d{1,3}$/.test(len) || Number(len) > 128) return { error: `bad prefix length in "${spec}"` };
    const prefix = Number(len);
    return { kind: 'network', matcher: { type: 'v6', net: maskV6(v6, prefix), prefix }, canMatch: true };
  }
  return { error: `bad network "${spec}"` };
}

function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffff_ffff << (32 - bits)) >>> 0;
}

function maskV6(a: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = a[i]! & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

// ---------------------------------------------------------------- addresses

/** A parsed client address: IPv4 clients also get their IPv4-mapped IPv6 form. */
export interface ClientAddress {
  readonly v4?: number;
  readonly v6: Uint8Array;
}

export function parseIPv4(s: string): number | undefined {
  if (!net.isIPv4(s)) return undefined;
  const p = s.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

export function parseIPv6(s: string): Uint8Array | undefined {
  if (s.includes('%') || !net.isIPv6(s)) return undefined;
  const words: number[] = [];
  const pushGroups = (part: string): void => {
    if (part === '') return;
    for (const g of part.split(':')) {
      const v4 = g.includes('.') ? parseIPv4(g) : undefined;
      if (v4 !== undefined) words.push(v4 >>> 16, v4 & 0xffff);
      else words.push(parseInt(g, 16));
    }
  };
  const gap = s.indexOf('::');
  if (gap < 0) pushGroups(s);
  else {
    pushGroups(s.slice(0, gap));
    const head = words.length;
    pushGroups(s.slice(gap + 2));
    words.splice(head, 0, ...new Array<number>(8 - words.length).fill(0));
  }
  if (words.length !== 8) return undefined;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

const addressCache = new Map<string, ClientAddress | null>();

/** Parses a socket's remoteAddress (zone ids dropped); undefined if it is not an IP. */
export function parseClientAddress(address: string): ClientAddress | undefined {
  const cached = addressCache.get(address);
  if (cached !== undefined) return cached ?? undefined;
  const parsed = parseUncached(address);
  if (addressCache.size >= 4096) addressCache.clear();
  addressCache.set(address, parsed ?? null);
  return parsed;
}

function parseUncached(address: string): ClientAddress | undefined {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) {
    const v6 = new Uint8Array(16);
    v6[10] = v6[11] = 0xff;
    v6[12] = v4 >>> 24;
    v6[13] = (v4 >>> 16) & 0xff;
    v6[14] = (v4 >>> 8) & 0xff;
    v6[15] = v4 & 0xff;
    return { v4, v6 };
  }
  const pct = address.indexOf('%');
  const v6 = parseIPv6(pct >= 0 ? address.slice(0, pct) : address);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  if (!mapped) return { v6 };
  return { v4: ((v6[12]! << 24) | (v6[13]! << 16) | (v6[14]! << 8) | v6[15]!) >>> 0, v6 };
}

function addressMatches(m: AddressMatcher, a: ClientAddress): boolean {
  switch (m.type) {
    case 'any':
      return true;
    case 'never':
      return false;
    case 'loopback':
      return (a.v4 !== undefined && a.v4 >>> 24 === 127) || a.v6.every((b, i) => b === (i === 15 ? 1 : 0));
    case 'v4':
      return a.v4 !== undefined && ((a.v4 & m.mask) >>> 0) === m.net;
    case 'v6':
      return maskedEqual(a.v6, m.net, m.prefix);
  }
}

function maskedEqual(a: Uint8Array, net6: Uint8Array, prefix: number): boolean {
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== net6[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return (a[whole]! & mask) === net6[whole];
}

// ---------------------------------------------------------------- matching

const RANK: Record<ClientKind, number> = { host: 0, network: 1, wildcard: 2, netgroup: 3, anonymous: 4 };

/** The rule that applies to an address, ignoring the port (for logs and mountd). */
export function findClientRule(exp: Export, address: string): ClientRule | undefined {
  const a = parseClientAddress(address);
  if (!a) return undefined;
  let best: ClientRule | undefined;
  for (const rule of exp.clients) {
    if ((!best || RANK[rule.kind] < RANK[best.kind]) && addressMatches(rule.matcher, a)) best = rule;
  }
  return best;
}

/**
 * The options for a client at `address`:`port`, or undefined when it is
 * denied: no rule matches, or the rule is `secure` and the port is 1024 or
 * above. Callers without a port (a local channel with checked peer
 * credentials) pass 0.
 */
export function matchClient(exp: Export, address: string, port: number): ExportOptions | undefined {
  const rule = findClientRule(exp, address);
  if (!rule) return undefined;
  if (rule.options.secure && port >= 1024) return undefined;
  return rule.options;
}

// ---------------------------------------------------------------- credentials

/** AUTH_SYS ids as the RPC layer decodes them; undefined for AUTH_NONE. */
export interface CallerIds {
  uid: number;
  gid: number;
  gids: readonly number[];
}

/**
 * The identity the backend acts as. root_squash maps uid 0 and gid 0
 * (primary and auxiliary) to the anonymous ids, as Linux does; all_squash
 * and AUTH_NONE map everyone to them, with no auxiliary groups.
 */
export function mapCred(opts: ExportOptions, cred: CallerIds | undefined): Cred {
  if (!cred || opts.allSquash) return { uid: opts.anonuid, gid: opts.anongid, gids: [] };
  if (!opts.rootSquash) return { uid: cred.uid, gid: cred.gid, gids: cred.gids };
  return {
    uid: cred.uid === 0 ? opts.anonuid : cred.uid,
    gid: cred.gid === 0 ? opts.anongid : cred.gid,
    gids: cred.gids.includes(0) ? cred.gids.map((g) => (g === 0 ? opts.anongid : g)) : cred.gids,
  };
}

// ---------------------------------------------------------------- serve DIR

/**
 * The export for `tsnfs serve DIR`: everyone (the listen address is what
 * limits reach; loopback by default), rw, root_squash, sync, insecure.
 *
 * `insecure` by default: behind NAT (containers, qemu's user network) and
 * for unprivileged clients (libnfs tools, this package's client) the source
 * port proves nothing, and requiring a reserved one only locks them out.
 * Exports files keep exports(5)'s default, `secure`.
 */
export function exportsForDir(dir: string, opts: { secure?: boolean } = {}): Export[] {
  const secure = opts.secure ?? false;
  const options: ExportOptions = Object.freeze({ ...DEFAULT_OPTIONS, rw: true, secure });
  const abs = path.resolve(dir);
  return [{ path: abs, line: 0, clients: [{ client: '*', kind: 'anonymous', matcher: { type: 'any' }, canMatch: true, options, ignored: [], line: 0 }] }];
}

/** Options in exports(5) spelling, as `showmount -e` and logs show them. */
export function formatOptions(o: ExportOptions): string {
  const parts = [
    o.rw ? 'rw' : 'ro',
    o.sync ? 'sync' : 'async',
    o.rootSquash ? 'root_squash' : 'no_root_squash',
    o.allSquash ? 'all_squash' : 'no_all_squash',
    o.secure ? 'secure' : 'insecure',
    o.subtreeCheck ? 'subtree_check' : 'no_subtree_check',
  ];
  if (o.anonuid !== DEFAULT_ANON_ID) parts.push(`anonuid=${o.anonuid}`);
  if (o.anongid !== DEFAULT_ANON_ID) parts.push(`anongid=${o.anongid}`);
  if (o.fsid !== undefined) parts.push(`fsid=${o.fsid}`);
  return parts.join(',');
}
