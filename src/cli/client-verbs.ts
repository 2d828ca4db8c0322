// The client verbs: ls, cat, cp, stat, rm, mkdir, mv, df on nfs:// URLs
// (libnfs's format: nfs://host[:port]/export/path?nfsport=P&mountport=M&uid=U).
//
// They behave as the coreutils of the same name where that makes sense: the
// same flags, output and messages ("tsnfs: cannot stat 'nfs://h/x': No such
// file or directory"), exit status 1 when something failed and 2 for a usage
// mistake. Each takes --stats: the client's counters as one JSON object on
// stderr at the end.

import { Command, Option } from 'commander';
import { pipeline } from 'node:stream/promises';
import type { NfsClient, NfsStats } from '../client/index.js';
import { copyAll, LocalPlace, moveAll, NfsPlace, type Place } from './copy.js';
import { columns, humanSize, lsDate, modeString, printable, statTime, typeName } from './format.js';
import { codeOf, displayUrl, emit, isNfsUrl, parseMode, runVerb, stdoutGone, UsageError, withClientOptions, type CommonFlags, type NfsTarget, type Reporter, type Session } from './nfs-session.js';

function nfsArgs(args: string[]): void {
  for (const a of args) if (!isNfsUrl(a)) throw new UsageError(`'${a}' is not an nfs:// URL`);
}

function busy(): Error {
  return Object.assign(new Error('the export itself'), { code: 'EBUSY' });
}

function join(rel: string, name: string): string {
  return rel ? `${rel}/${name}` : name;
}

function childDisplay(display: string, name: string): string {
  return display.endsWith('/') ? display + name : `${display}/${name}`;
}

// ---- ls ----

interface LsFlags extends CommonFlags {
  long?: boolean;
  recursive?: boolean;
  all?: boolean;
  humanReadable?: boolean;
}

interface LsItem {
  client: NfsClient;
  name: string;
  st: NfsStats;
  /** Path relative to the mount (for readlink). */
  rel: string;
}

async function longLines(items: LsItem[], flags: LsFlags): Promise<string[]> {
  const rows: string[][] = [];
  const now = Date.now();
  for (const it of items) {
    const st = it.st;
    let size: string;
    if (st.isBlockDevice() || st.isCharacterDevice()) size = `${st.attrs.rdev.specdata1}, ${st.attrs.rdev.specdata2}`;
    else size = flags.humanReadable ? humanSize(st.sizeBig) : String(st.sizeBig);
    let name = printable(it.name);
    if (st.isSymbolicLink()) {
      const target = await it.client.readlink(it.rel).catch(() => '?');
      name += ` -> ${printable(target)}`;
    }
    rows.push([modeString(st.mode), String(st.nlink), String(st.uid), String(st.gid), size, lsDate(st.mtimeMs, now), name]);
  }
  return columns(rows, [false, true, true, true, true, false, false]);
}

async function listDirectory(t: NfsTarget, rel: string, display: string, flags: LsFlags, header: boolean, first: { v: boolean }, report: Reporter): Promise<void> {
  const { client } = t;
  let entries;
  try {
    entries = await client.readdir(rel, { withFileTypes: true });
  } catch (err) {
    report.fail(`cannot open directory '${display}'`, err);
    return;
  }
  const shown = entries.filter((e) => flags.all || !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const items: LsItem[] = [];
  for (const e of shown) {
    const st = e.stats ?? (await client.lstat(join(rel, e.name)).catch(() => undefined));
    if (st) items.push({ client, name: e.name, st, rel: join(rel, e.name) });
  }
  let text = '';
  if (header) text += `${first.v ? '' : '\n'}${display}:\n`;
  first.v = false;
  if (flags.long) {
    const blocks = items.reduce((n, it) => n + it.st.blocks, 0);
    text += `total ${flags.humanReadable ? humanSize(blocks * 512) : Math.ceil(blocks / 2)}\n`;
    for (const line of await longLines(items, flags)) text += line + '\n';
  } else {
    for (const it of items) text += printable(it.name) + '\n';
  }
  await emit(text);
  if (flags.recursive) {
    for (const it of items) {
      if (it.st.isDirectory()) await listDirectory(t, it.rel, childDisplay(display, it.name), flags, true, first, report);
    }
  }
}

async function ls(urls: string[], flags: LsFlags, session: Session, report: Reporter): Promise<void> {
  const files: LsItem[] = [];
  const dirs: NfsTarget[] = [];
  for (const url of urls) {
    try {
      const t = await session.resolve(url);
      // As ls: a symbolic link given by name is followed unless -l shows the link itself.
      const st = flags.long ? await t.client.lstat(t.rel) : await t.client.stat(t.rel);
      if (st.isDirectory()) dirs.push(t);
      else files.push({ client: t.client, name: t.display, st, rel: t.rel });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      report.fail(`cannot access '${displayUrl(url)}'`, err);
    }
  }
  const first = { v: true };
  if (files.length > 0) {
    const lines = flags.long ? await longLines(files, flags) : files.map((f) => printable(f.name));
    await emit(lines.join('\n') + '\n');
    first.v = false;
  }
  const headers = flags.recursive === true || urls.length > 1;
  for (const d of dirs) await listDirectory(d, d.rel, d.display, flags, headers, first, report);
}

// ---- cat ----

async function cat(urls: string[], session: Session, report: Reporter): Promise<void> {
  for (const url of urls) {
    let t: NfsTarget;
    try {
      t = await session.resolve(url);
    } catch (err) {
      report.fail(`cannot open '${displayUrl(url)}' for reading`, err);
      continue;
    }
    const input = t.client.createReadStream(t.rel, { highWaterMark: t.client.rsize });
    let readError: unknown;
    input.once('error', (err) => (readError = err));
    try {
      await pipeline(input, process.stdout, { end: false });
    } catch (err) {
      if (stdoutGone() || codeOf(err) === 'EPIPE') return;
      const e = readError ?? err;
      report.fail((e as { syscall?: string }).syscall === 'open' ? `cannot open '${t.display}' for reading` : `error reading '${t.display}'`, e);
    }
  }
}

// ---- stat ----

interface StatFlags extends CommonFlags {
  dereference?: boolean;
  json?: boolean;
}

async function stat(urls: string[], flags: StatFlags, session: Session, report: Reporter): Promise<void> {
  for (const url of urls) {
    let t: NfsTarget;
    let st: NfsStats;
    try {
      t = await session.resolve(url);
      st = flags.dereference ? await t.client.stat(t.rel) : await t.client.lstat(t.rel);
    } catch (err) {
      report.fail(`cannot stat '${displayUrl(url)}'`, err);
      continue;
    }
    const a = st.attrs;
    const mode = st.mode;
    const target = st.isSymbolicLink() ? await t.client.readlink(t.rel).catch(() => undefined) : undefined;
    if (flags.json) {
      const iso = (x: { seconds: number; nseconds: number }): string => new Date(x.seconds * 1000).toISOString().replace(/\.\d{3}Z$/, `.${String(x.nseconds).padStart(9, '0')}Z`);
      const o: Record<string, unknown> = {
        file: t.display,
        type: typeName(mode, 1).replace('regular file', 'file').replace('symbolic link', 'symlink'),
        mode: (a.mode & 0o7777).toString(8).padStart(4, '0'),
        size: Number(a.size),
        used: Number(a.used),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        fileid: a.fileid.toString(),
        fsid: a.fsid.toString(),
        rdev: [a.rdev.specdata1, a.rdev.specdata2],
        atime: iso(a.atime),
        mtime: iso(a.mtime),
        ctime: iso(a.ctime),
      };
      if (target !== undefined) o.target = target;
      await emit(JSON.stringify(o) + '\n');
      continue;
    }
    const lines = [
      `  File: ${t.display}${target !== undefined ? ` -> ${target}` : ''}`,
      `  Size: ${String(a.size).padEnd(10)}\tBlocks: ${String(st.blocks).padEnd(10)} IO Block: ${String(st.blksize).padEnd(6)} ${typeName(mode, st.size)}`,
      `Device: ${a.fsid.toString(16)}h\tInode: ${String(a.fileid).padEnd(11)} Links: ${a.nlink}` +
        (st.isBlockDevice() || st.isCharacterDevice() ? `\tDevice type: ${a.rdev.specdata1},${a.rdev.specdata2}` : ''),
      `Access: (${(a.mode & 0o7777).toString(8).padStart(4, '0')}/${modeString(mode)})  Uid: (${String(a.uid).padStart(5)})   Gid: (${String(a.gid).padStart(5)})`,
      `Access: ${statTime(a.atime.seconds, a.atime.nseconds)}`,
      `Modify: ${statTime(a.mtime.seconds, a.mtime.nseconds)}`,
      `Change: ${statTime(a.ctime.seconds, a.ctime.nseconds)}`,
      ' Birth: -',
    ];
    await emit(lines.join('\n') + '\n');
  }
}

// ---- rm, mkdir ----

async function rm(urls: string[], flags: { recursive?: boolean; force?: boolean }, session: Session, report: Reporter): Promise<void> {
  for (const url of urls) {
    try {
      const t = await session.resolve(url);
      if (t.rel === '') throw busy();
      await t.client.rm(t.rel, { recursive: flags.recursive === true, force: flags.force === true });
    } catch (err) {
      if (flags.force && codeOf(err) === 'ENOENT') continue;
      report.fail(`cannot remove '${displayUrl(url)}'`, err);
    }
  }
}

async function mkdir(urls: string[], flags: { parents?: boolean; mode?: number }, session: Session, report: Reporter): Promise<void> {
  for (const url of urls) {
    try {
      const t = await session.resolve(url);
      if (t.rel === '') {
        if (flags.parents) continue;
        throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      }
      const first = await t.client.mkdir(t.rel, { recursive: flags.parents === true, mode: flags.mode });
      // An explicit mode is the mode of the directory made, whatever the umask (as mkdir -m).
      if (flags.mode !== undefined && (!flags.parents || first !== undefined)) await t.client.chmod(t.rel, flags.mode);
    } catch (err) {
      report.fail(`cannot create directory '${displayUrl(url)}'`, err);
    }
  }
}

// ---- cp, mv ----

async function places(args: string[], session: Session, report: Reporter): Promise<Array<Place | undefined>> {
  const out: Array<Place | undefined> = [];
  for (const a of args) {
    if (!isNfsUrl(a)) {
      out.push(new LocalPlace(a));
      continue;
    }
    try {
      out.push(new NfsPlace(await session.resolve(a)));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      report.fail(`cannot access '${displayUrl(a)}'`, err);
      out.push(undefined);
    }
  }
  return out;
}

function splitOperands(args: string[]): { sources: string[]; dest: string } {
  if (args.length < 2) throw new UsageError(`missing destination file operand after '${args[0] ?? ''}'`);
  return { sources: args.slice(0, -1), dest: args[args.length - 1]! };
}

// ---- df ----

interface DfFlags extends CommonFlags {
  humanReadable?: boolean;
  inodes?: boolean;
}

async function df(urls: string[], flags: DfFlags, session: Session, report: Reporter): Promise<void> {
  const rows: string[][] = [];
  if (flags.inodes) rows.push(['Filesystem', 'Inodes', 'IUsed', 'IFree', 'IUse%', 'URL']);
  else rows.push(['Filesystem', flags.humanReadable ? 'Size' : '1K-blocks', 'Used', flags.humanReadable ? 'Avail' : 'Available', 'Use%', 'URL']);
  const pct = (used: bigint, avail: bigint): string => (used + avail === 0n ? '-' : `${Math.ceil((Number(used) * 100) / Number(used + avail))}%`);
  for (const url of urls) {
    try {
      const t = await session.resolve(url);
      const s = await t.client.statfs(t.rel);
      const fsName = `${t.client.host.includes(':') ? `[${t.client.host}]` : t.client.host}:${t.client.exportPath}`;
      if (flags.inodes) {
        const used = s.totalFiles - s.freeFiles;
        rows.push([fsName, String(s.totalFiles), String(used), String(s.availFiles), pct(used, s.availFiles), t.display]);
      } else {
        const used = s.totalBytes - s.freeBytes;
        const size = (b: bigint): string => (flags.humanReadable ? humanSize(b) : String((b + 1023n) / 1024n));
        rows.push([fsName, size(s.totalBytes), size(used), size(s.availBytes), pct(used, s.availBytes), t.display]);
      }
    } catch (err) {
      report.fail(`cannot access '${displayUrl(url)}'`, err);
    }
  }
  if (rows.length > 1) await emit(columns(rows, [false, true, true, true, true, false]).join('\n') + '\n');
}

// ---- registration ----

const URL_HELP = 'nfs://host[:port]/export/path[?nfsport=P&mountport=M&uid=U&gid=G...]';

export function clientVerbs(program: Command): void {
  withClientOptions(
    program
      .command('ls')
      .description('list a directory on an export')
      .helpOption('--help', 'display help for command')
      .argument('<url...>', URL_HELP)
      .option('-l', 'long listing (mode, links, uid, gid, size, mtime)')
      .option('-R, --recursive', 'list subdirectories recursively')
      .option('-a, --all', 'include names that start with .')
      .option('-h, --human-readable', 'sizes as 1K, 23M, 4.5G'),
  ).action(async (urls: string[], o: LsFlags & { l?: boolean }) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => ls(urls, { ...o, long: o.l === true }, s, r));
  });

  withClientOptions(
    program
      .command('cat')
      .description('write files on an export to standard output')
      .argument('<url...>', URL_HELP),
  ).action(async (urls: string[], o: CommonFlags) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => cat(urls, s, r));
  });

  withClientOptions(
    program
      .command('cp')
      .description('copy files and trees between local paths and nfs:// URLs, either way')
      .usage('[options] SOURCE... DEST')
      .argument('<paths...>', 'sources and a destination: local paths or nfs:// URLs')
      .option('-r, --recursive', 'copy directories recursively')
      .addOption(new Option('-R', 'same as -r').hideHelp())
      .option('--no-progress', 'no progress bar (shown on a terminal for copies that last)'),
  ).action(async (args: string[], o: CommonFlags & { recursive?: boolean; R?: boolean; progress: boolean }) => {
    const { sources, dest } = splitOperands(args);
    await runVerb(o, async (s, r) => {
      const all = await places([...sources, dest], s, r);
      const d = all.pop();
      if (!d) return;
      await copyAll(all.filter((p): p is Place => p !== undefined), d, { recursive: o.recursive === true || o.R === true, progress: o.progress }, r);
    });
  });

  withClientOptions(
    program
      .command('mv')
      .description('move or rename files and directories (a rename on one export, else copy and remove)')
      .usage('[options] SOURCE... DEST')
      .argument('<paths...>', 'sources and a destination: nfs:// URLs or local paths')
      .option('--no-progress', 'no progress bar when moving between file systems'),
  ).action(async (args: string[], o: CommonFlags & { progress: boolean }) => {
    const { sources, dest } = splitOperands(args);
    await runVerb(o, async (s, r) => {
      const all = await places([...sources, dest], s, r);
      const d = all.pop();
      if (!d) return;
      await moveAll(all.filter((p): p is Place => p !== undefined), d, { progress: o.progress }, r);
    });
  });

  withClientOptions(
    program
      .command('stat')
      .description('show the attributes of files on an export')
      .argument('<url...>', URL_HELP)
      .option('-L, --dereference', 'follow symbolic links')
      .option('--json', 'one JSON object per file'),
  ).action(async (urls: string[], o: StatFlags) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => stat(urls, o, s, r));
  });

  withClientOptions(
    program
      .command('rm')
      .description('remove files (and with -r, directories) on an export')
      .argument('<url...>', URL_HELP)
      .option('-r, --recursive', 'remove directories and their contents')
      .addOption(new Option('-R', 'same as -r').hideHelp())
      .option('-f, --force', 'ignore missing files'),
  ).action(async (urls: string[], o: CommonFlags & { recursive?: boolean; R?: boolean; force?: boolean }) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => rm(urls, { recursive: o.recursive === true || o.R === true, force: o.force }, s, r));
  });

  withClientOptions(
    program
      .command('mkdir')
      .description('make directories on an export')
      .argument('<url...>', URL_HELP)
      .option('-p, --parents', 'make parents as needed; no error if it exists')
      .option('-m, --mode <mode>', 'permission bits (octal), not less the umask', parseMode),
  ).action(async (urls: string[], o: CommonFlags & { parents?: boolean; mode?: number }) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => mkdir(urls, o, s, r));
  });

  withClientOptions(
    program
      .command('df')
      .description('show the size and free space of exports')
      .helpOption('--help', 'display help for command')
      .argument('<url...>', URL_HELP)
      .option('-h, --human-readable', 'sizes as 1K, 23M, 4.5G')
      .option('-i, --inodes', 'file counts instead of bytes'),
  ).action(async (urls: string[], o: DfFlags) => {
    nfsArgs(urls);
    await runVerb(o, (s, r) => df(urls, o, s, r));
  });
}
