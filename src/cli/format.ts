// Text formats of the client verbs: ls -l lines, stat's report, df's sizes.

/** S_IF* type bits. */
const S_IFMT = 0o170000;
const TYPE_CHAR: Record<number, string> = {
  0o100000: '-',
  0o040000: 'd',
  0o120000: 'l',
  0o060000: 'b',
  0o020000: 'c',
  0o010000: 'p',
  0o140000: 's',
};

/** `drwxr-xr-x` from a stat mode (with its type bits). */
export function modeString(mode: number): string {
  const t = TYPE_CHAR[mode & S_IFMT] ?? '?';
  const rwx = (bits: number, special: boolean, specialChar: string): string => {
    const x = (bits & 1) !== 0;
    const last = special ? (x ? specialChar : specialChar.toUpperCase()) : x ? 'x' : '-';
    return ((bits & 4) !== 0 ? 'r' : '-') + ((bits & 2) !== 0 ? 'w' : '-') + last;
  };
  return t + rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') + rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') + rwx(mode & 7, (mode & 0o1000) !== 0, 't');
}

/** What stat(1) calls a file type. */
export function typeName(mode: number, size: number): string {
  switch (mode & S_IFMT) {
    case 0o100000:
      return size === 0 ? 'regular empty file' : 'regular file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symbolic link';
    case 0o060000:
      return 'block special file';
    case 0o020000:
      return 'character special file';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return 'weird file';
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = (365.2425 / 2) * 24 * 3600 * 1000;

/** ls -l's date: "Nov 24 16:05" within six months of now, "Nov 24  2023" otherwise (local time). */
export function lsDate(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const day = String(d.getDate()).padStart(2, ' ');
  const recent = ms <= now + 60_000 && now - ms < SIX_MONTHS_MS;
  const tail = recent ? `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}` : ` ${d.getFullYear()}`;
  return `${MONTHS[d.getMonth()]} ${day} ${tail}`;
}

/** stat(1)'s time: "2024-11-24 16:05:09.123456789 +0100" (local time). */
export function statTime(seconds: number, nseconds: number): string {
  const d = new Date(seconds * 1000);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return (
    `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}` +
    `.${String(nseconds).padStart(9, '0')} ${sign}${p2(Math.floor(a / 60))}${p2(a % 60)}`
  );
}

/** Sizes as `ls -h` / `df -h` print them: 1023, 1.0K, 4.5M, 12G (powers of 1024). */
export function humanSize(bytes: number | bigint): string {
  let n = Number(bytes);
  if (n < 1024) return String(n);
  const units = ['K', 'M', 'G', 'T', 'P', 'E'];
  let i = -1;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  // As coreutils: one decimal below 10, rounded up.
  const s = n < 10 ? (Math.ceil(n * 10) / 10).toFixed(1) : String(Math.ceil(n));
  return s === '10.0' ? `10${units[i]}` : `${s}${units[i]}`;
}

/** Rows of cells as aligned columns; `right` says which columns align right. */
export function columns(rows: string[][], right: boolean[], sep = ' '): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => {
        if (i === r.length - 1 && !right[i]) return c; // no trailing blanks
        return right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!);
      })
      .join(sep),
  );
}

/** A name as ls prints it, quoting what would mislead on a terminal (control characters). */
export function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]/.test(name) ? JSON.stringify(name) : name;
}
