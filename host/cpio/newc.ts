/**
 * cpio "newc" (SVR4, no CRC) archives, as the Linux kernel reads an
 * initramfs: pure TypeScript, no I/O. The writer is deterministic (inode
 * numbers count up from `inoStart`, no host metadata), streams big file
 * data without copying it, and validates paths before writing a byte. The
 * reader parses one archive or several appended ones (the kernel lets later
 * entries win, which is how the injector appends a segment). A malformed
 * archive or entry throws a HeroError "cpio.*" naming the kind (path,
 * duplicate, magic, truncated, hex, field).
 */
import { HeroError } from "../../lib/errors.ts";

/** One archive member. `mode` holds permission bits only; the type bits are added. */
export type CpioEntry =
  | {
      type: "file";
      path: string;
      mode: number;
      data: Uint8Array;
      uid?: number;
      gid?: number;
      mtime?: number;
    }
  | { type: "dir"; path: string; mode: number; uid?: number; gid?: number; mtime?: number }
  | { type: "symlink"; path: string; target: string; uid?: number; gid?: number; mtime?: number }
  | {
      type: "char" | "block";
      path: string;
      mode: number;
      major: number;
      minor: number;
      uid?: number;
      gid?: number;
      mtime?: number;
    }
  | { type: "fifo"; path: string; mode: number; uid?: number; gid?: number; mtime?: number };

const MAGIC = "070701";
const TRAILER = "TRAILER!!!";
const S_IFMT = 0o170000;
/** File type bits of st_mode. */
export const S_IF = {
  fifo: 0o010000,
  char: 0o020000,
  dir: 0o040000,
  block: 0o060000,
  file: 0o100000,
  symlink: 0o120000,
} as const;

const enc = new TextEncoder();
const pad4 = (n: number) => (4 - (n % 4)) % 4;
const hex8 = (n: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new HeroError("cpio.field", `field value ${n} does not fit in 8 hex digits`);
  return n.toString(16).toUpperCase().padStart(8, "0");
};

/** Normalises an archive path: strips "/" and "./" prefixes; refuses empty, "..", NUL, too long. */
export function normalisePath(p: string): string {
  let s = p;
  while (s.startsWith("./") || s.startsWith("/")) s = s.startsWith("./") ? s.slice(2) : s.slice(1);
  s = s.replace(/\/+$/, "");
  if (s === "" || s === ".") throw new HeroError("cpio.path", `empty path "${p}"`);
  if (s.includes("\0")) throw new HeroError("cpio.path", `path contains NUL: ${JSON.stringify(p)}`);
  if (s.split("/").some((part) => part === ".." || part === ""))
    throw new HeroError("cpio.path", `path escapes or is malformed: "${p}"`);
  if (enc.encode(s).length > 4095)
    throw new HeroError("cpio.path", `path longer than 4095 bytes: "${s.slice(0, 40)}…"`);
  return s;
}

interface Header {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  rdevmajor: number;
  rdevminor: number;
  name: string;
}

function header(h: Header): Uint8Array {
  const name = enc.encode(`${h.name}\0`);
  const fields = [
    h.ino,
    h.mode,
    h.uid,
    h.gid,
    h.nlink,
    h.mtime,
    h.filesize,
    0,
    0,
    h.rdevmajor,
    h.rdevminor,
    name.length,
    0,
  ];
  const head = enc.encode(MAGIC + fields.map(hex8).join(""));
  const out = new Uint8Array(head.length + name.length + pad4(head.length + name.length));
  out.set(head, 0);
  out.set(name, head.length);
  return out;
}

const zeros = (n: number) => new Uint8Array(n);

/** Streams an archive: each header+name, data, padding, then the trailer and 512-byte padding. */
export function* newcChunks(
  entries: Iterable<CpioEntry>,
  opts: { inoStart?: number } = {},
): Generator<Uint8Array> {
  let ino = opts.inoStart ?? 1;
  let total = 0;
  const seen = new Set<string>();
  const emit = function* (chunk: Uint8Array) {
    total += chunk.length;
    yield chunk;
  };
  for (const e of entries) {
    const name = normalisePath(e.path);
    if (seen.has(name)) throw new HeroError("cpio.duplicate", `duplicate path "${name}"`);
    seen.add(name);
    const data =
      e.type === "file" ? e.data : e.type === "symlink" ? enc.encode(e.target) : new Uint8Array(0);
    const perm = e.type === "symlink" ? 0o777 : e.mode & 0o7777;
    const dev = e.type === "char" || e.type === "block";
    yield* emit(
      header({
        ino: ino++,
        mode: S_IF[e.type] | perm,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        nlink: e.type === "dir" ? 2 : 1,
        mtime: e.mtime ?? 0,
        filesize: data.length,
        rdevmajor: dev ? e.major : 0,
        rdevminor: dev ? e.minor : 0,
        name,
      }),
    );
    if (data.length) {
      yield* emit(data);
      const p = pad4(data.length);
      if (p) yield* emit(zeros(p));
    }
  }
  yield* emit(
    header({
      ino: 0,
      mode: 0,
      uid: 0,
      gid: 0,
      nlink: 1,
      mtime: 0,
      filesize: 0,
      rdevmajor: 0,
      rdevminor: 0,
      name: TRAILER,
    }),
  );
  const tailPad = (512 - (total % 512)) % 512;
  if (tailPad) yield zeros(tailPad);
}

/** The whole archive in one buffer. */
export function writeNewc(
  entries: Iterable<CpioEntry>,
  opts: { inoStart?: number } = {},
): Uint8Array {
  const chunks = [...newcChunks(entries, opts)];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** One parsed member. `mode` is the full st_mode; `data` is file data or the symlink target. */
export interface CpioRecord {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  ino: number;
  devmajor: number;
  devminor: number;
  rdevmajor: number;
  rdevminor: number;
  data: Uint8Array;
}

const dec = new TextDecoder();

function parseHex(bytes: Uint8Array, at: number, field: string): number {
  const s = dec.decode(bytes.subarray(at, at + 8));
  if (!/^[0-9a-fA-F]{8}$/.test(s))
    throw new HeroError(
      "cpio.hex",
      `bad hex in field ${field} at offset ${at}: ${JSON.stringify(s)}`,
    );
  return Number.parseInt(s, 16);
}

/** Parses one archive from `offset`; `end` is just past the trailer record. */
export function readNewc(bytes: Uint8Array, offset = 0): { records: CpioRecord[]; end: number } {
  const records: CpioRecord[] = [];
  let at = offset;
  const names = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
  ] as const;
  for (;;) {
    if (at + 110 > bytes.length)
      throw new HeroError("cpio.truncated", `truncated header at offset ${at}`);
    const magic = dec.decode(bytes.subarray(at, at + 6));
    if (magic !== MAGIC && magic !== "070702")
      throw new HeroError("cpio.magic", `bad magic at offset ${at}: ${JSON.stringify(magic)}`);
    const h = Object.fromEntries(
      names.map((n, i) => [n, parseHex(bytes, at + 6 + i * 8, n)]),
    ) as Record<(typeof names)[number], number>;
    const {
      ino,
      mode,
      uid,
      gid,
      nlink,
      mtime,
      filesize,
      devmajor,
      devminor,
      rdevmajor,
      rdevminor,
      namesize,
    } = h;
    if (namesize < 1) throw new HeroError("cpio.field", `namesize 0 at offset ${at}`);
    const nameAt = at + 110;
    if (nameAt + namesize > bytes.length)
      throw new HeroError("cpio.truncated", `truncated name at offset ${nameAt}`);
    const path = dec.decode(bytes.subarray(nameAt, nameAt + namesize - 1));
    const dataAt = nameAt + namesize + pad4(110 + namesize);
    if (path === TRAILER) return { records, end: dataAt };
    if (dataAt + filesize > bytes.length)
      throw new HeroError("cpio.truncated", `truncated data of "${path}" at offset ${dataAt}`);
    records.push({
      path,
      mode,
      uid,
      gid,
      nlink,
      mtime,
      ino,
      devmajor,
      devminor,
      rdevmajor,
      rdevminor,
      data: bytes.subarray(dataAt, dataAt + filesize),
    });
    at = dataAt + filesize + pad4(filesize);
  }
}

/** Parses archives appended back to back (zero padding between them is skipped). */
export function readConcatenated(bytes: Uint8Array): CpioRecord[][] {
  const out: CpioRecord[][] = [];
  let at = 0;
  for (;;) {
    while (at < bytes.length && bytes[at] === 0) at++;
    if (at >= bytes.length) return out;
    const r = readNewc(bytes, at);
    out.push(r.records);
    at = r.end;
  }
}

/** The entry type of a full st_mode. */
export function typeOf(mode: number): CpioEntry["type"] | "unknown" {
  const t = mode & S_IFMT;
  return (
    (Object.entries(S_IF).find(([, v]) => v === t)?.[0] as CpioEntry["type"] | undefined) ??
    "unknown"
  );
}
