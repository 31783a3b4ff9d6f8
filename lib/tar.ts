/**
 * Minimal ustar/pax tar reading and writing (pure): enough to unpack a
 * release archive's binary and to build an OCI layer. Writer output is
 * deterministic (fixed mtime, uid/gid 0, sorted by the caller).
 */
import { HeroError } from "./errors.ts";
import { inflate, maxUnpacked } from "./inflate.ts";

/** A tar member. */
export interface TarEntry {
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  data?: Uint8Array;
  target?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function octal(bytes: Uint8Array): number {
  const s = dec.decode(bytes).replace(/\0.*$/s, "").trim();
  return s ? Number.parseInt(s, 8) : 0;
}

function cstr(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return dec.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Parses a tar archive (ustar, GNU long names, pax path/linkpath). Throws on a bad checksum. */
export function readTar(bytes: Uint8Array): TarEntry[] {
  const out: TarEntry[] = [];
  let at = 0;
  let longName: string | null = null;
  let pax: Record<string, string> = {};
  while (at + 512 <= bytes.length) {
    const h = bytes.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const sum = octal(h.subarray(148, 156));
    let calc = 0;
    for (let i = 0; i < 512; i++) calc += i >= 148 && i < 156 ? 32 : (h[i] as number);
    if (sum !== calc) throw new Error(`tar: bad header checksum at offset ${at}`);
    const size = octal(h.subarray(124, 136));
    const flag = String.fromCharCode(h[156] as number);
    const data = bytes.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (flag === "L") {
      longName = cstr(data);
      continue;
    }
    if (flag === "x") {
      pax = {};
      for (const rec of dec.decode(data).split("\n")) {
        const m = /^\d+ ([^=]+)=(.*)$/.exec(rec);
        if (m) pax[m[1] as string] = m[2] as string;
      }
      continue;
    }
    if (flag === "g") continue;
    const prefix = cstr(h.subarray(345, 500));
    const name =
      pax.path ??
      longName ??
      (prefix ? `${prefix}/${cstr(h.subarray(0, 100))}` : cstr(h.subarray(0, 100)));
    const type =
      flag === "5"
        ? "dir"
        : flag === "2"
          ? "symlink"
          : flag === "0" || flag === "\0" || flag === "7"
            ? "file"
            : null;
    if (type) {
      out.push({
        path: name.replace(/^\.\//, ""),
        type,
        mode: octal(h.subarray(100, 108)),
        uid: octal(h.subarray(108, 116)),
        gid: octal(h.subarray(116, 124)),
        mtime: octal(h.subarray(136, 148)),
        data: type === "file" ? data : undefined,
        target: type === "symlink" ? (pax.linkpath ?? cstr(h.subarray(157, 257))) : undefined,
      });
    }
    longName = null;
    pax = {};
  }
  return out;
}

function field(h: Uint8Array, off: number, len: number, value: string): void {
  h.set(enc.encode(value).subarray(0, len), off);
}

function octalField(h: Uint8Array, off: number, len: number, n: number): void {
  field(h, off, len, `${n.toString(8).padStart(len - 1, "0")}\0`);
}

function header(
  name: string,
  e: Omit<TarEntry, "path">,
  size: number,
  flag: string,
  linkname = "",
): Uint8Array {
  const h = new Uint8Array(512);
  field(h, 0, 100, name);
  octalField(h, 100, 8, e.mode & 0o7777);
  octalField(h, 108, 8, e.uid ?? 0);
  octalField(h, 116, 8, e.gid ?? 0);
  octalField(h, 124, 12, size);
  octalField(h, 136, 12, e.mtime ?? 0);
  h.fill(32, 148, 156);
  field(h, 156, 1, flag);
  field(h, 157, 100, linkname);
  field(h, 257, 8, "ustar\x0000");
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
  return `${len}${body}`;
}

/** Writes a tar archive (ustar, pax headers for long names/targets), ending with two zero blocks. */
export function writeTar(entries: readonly TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const pad = (n: number) => new Uint8Array((512 - (n % 512)) % 512);
  for (const e of entries) {
    const name = e.type === "dir" && !e.path.endsWith("/") ? `${e.path}/` : e.path;
    const target = e.target ?? "";
    if (enc.encode(name).length > 99 || enc.encode(target).length > 99) {
      const rec = enc.encode(
        `${paxRecord("path", name)}${target ? paxRecord("linkpath", target) : ""}`,
      );
      parts.push(
        header("././@PaxHeader", { type: "file", mode: 0o644 }, rec.length, "x"),
        rec,
        pad(rec.length),
      );
    }
    const data = e.type === "file" ? (e.data ?? new Uint8Array(0)) : new Uint8Array(0);
    const flag = e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0";
    parts.push(header(name.slice(0, 99), e, data.length, flag, target.slice(0, 99)));
    if (data.length) parts.push(data, pad(data.length));
  }
  parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The binary inside a release archive (tar.gz), by member name or by file
 * name. The archive unpacks to at most `max` bytes (default: the unpack
 * limit of lib/inflate.ts), or HeroError "too-large".
 */
export function extractMember(
  archive: Uint8Array,
  member: string,
  what: string,
  max = maxUnpacked(),
): Uint8Array {
  const entries = readTar(inflate(archive, "gzip", { max, what: `${what}: the release archive` }));
  const hit =
    entries.find((e) => e.type === "file" && e.path === member) ??
    entries.find((e) => e.type === "file" && e.path.split("/").at(-1) === member);
  if (!hit?.data)
    throw new HeroError(
      "archive",
      `${what}: no member "${member}" in the archive (has: ${entries.map((e) => e.path).join(", ")})`,
    );
  return hit.data;
}
