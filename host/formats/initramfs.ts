/**
 * An initramfs file. Injecting APPENDS one uncompressed newc segment to the
 * existing image (plain, gzip or zstd) without unpacking it: the kernel
 * unpacks segments in order and later entries replace earlier ones. The
 * segment starts with a marker entry recording the base length, so a re-run
 * replaces our segment instead of stacking another, and a run whose plan is
 * already in effect changes nothing. Written to a temp file and renamed.
 */
import { appendFileSync, copyFileSync, existsSync, readFileSync, truncateSync } from "node:fs";
import { atomicWrite, replaceFile } from "../../lib/atomic-file.ts";
import { isHeroError } from "../../lib/errors.ts";
import { compressionOf, DEFAULT_MAX_UNPACKED, inflate, maxUnpacked } from "../../lib/inflate.ts";
import {
  type CpioEntry,
  type CpioRecord,
  readConcatenated,
  typeOf,
  writeNewc,
} from "../cpio/newc.ts";
import type { PlanEntry } from "../plan.ts";
import { checkReadSize, type Existing, type RootfsFormat } from "./types.ts";

/** Name of the marker entry that opens hero-init's segment. */
export const SEGMENT_MARKER = ".hero-init-segment";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Pure: where hero-init's appended segment starts, or -1. */
export function findSegment(bytes: Uint8Array): number {
  const needle = enc.encode(`${SEGMENT_MARKER}\0`);
  for (let at = bytes.length - needle.length; at >= 110; at--) {
    if (bytes[at] !== needle[0]) continue;
    let ok = true;
    for (let j = 1; j < needle.length && ok; j++) ok = bytes[at + j] === needle[j];
    if (ok && dec.decode(bytes.subarray(at - 110, at - 104)) === "070701") return at - 110;
  }
  return -1;
}

/**
 * Pure: decompresses a base image (plain newc, gzip or zstd) into its
 * segments' records. The decompressed size is capped at `o.max` bytes (see
 * lib/inflate.ts): a bomb throws HeroError "too-large" naming `o.file`.
 */
export function baseRecords(
  base: Uint8Array,
  o: { max: number; file?: string } = { max: DEFAULT_MAX_UNPACKED },
): CpioRecord[] {
  if (base.length === 0) return [];
  const kind = compressionOf(base);
  const plain = kind ? inflate(base, kind, { ...o, what: `${kind} initramfs base image` }) : base;
  return readConcatenated(plain).flat();
}

/** Pure: plan entries as cpio entries (paths relative, mtime fixed). */
export function planToCpio(plan: readonly PlanEntry[], mtime: number): CpioEntry[] {
  return plan.map((e) =>
    e.kind === "file"
      ? { type: "file", path: e.path, mode: e.mode, uid: e.uid, gid: e.gid, data: e.data, mtime }
      : e.kind === "dir"
        ? { type: "dir", path: e.path, mode: e.mode, uid: e.uid, gid: e.gid, mtime }
        : { type: "symlink", path: e.path, target: e.target, uid: e.uid, gid: e.gid, mtime },
  );
}

/** Opens an initramfs file; with `create`, a missing file is built from `create.base` plus the plan. */
export function initramfsFormat(path: string, create?: { base: CpioEntry[] }): RootfsFormat {
  let view: Map<string, CpioRecord> | null = null;
  const load = (): { base: Uint8Array; view: Map<string, CpioRecord> } => {
    const bytes = existsSync(path) ? new Uint8Array(readFileSync(path)) : new Uint8Array(0);
    const seg = findSegment(bytes);
    const base = seg >= 0 ? bytes.subarray(0, seg) : bytes;
    const m = new Map<string, CpioRecord>();
    let records: CpioRecord[] = [];
    try {
      records = baseRecords(base, { max: maxUnpacked(), file: path });
    } catch (e) {
      // Too big to unpack (a bomb, or an image past HERO_MAX_UNPACKED): refused, nothing written.
      if (isHeroError(e, "input") && e.code !== "corrupt") throw e;
      records = []; // unknown layout: lookups see nothing, which only makes injection more conservative
    }
    if (seg >= 0) records.push(...readConcatenated(bytes.subarray(seg)).flat());
    for (const r of records) m.set(`/${r.path}`, r); // later entries win, as in the kernel
    return { base, view: m };
  };

  return {
    kind: "initramfs",
    exists: async () => existsSync(path) || create !== undefined,
    async lookup(p) {
      view ??= load().view;
      const r = view.get(p);
      if (!r) return null;
      const t = typeOf(r.mode);
      if (t === "file")
        return {
          type: "file",
          mode: r.mode & 0o7777,
          uid: r.uid,
          gid: r.gid,
          data: async (maxBytes) => {
            checkReadSize(p, r.data.length, maxBytes);
            return r.data;
          },
        } satisfies Existing;
      if (t === "dir") return { type: "dir", mode: r.mode & 0o7777, uid: r.uid, gid: r.gid };
      if (t === "symlink") return { type: "symlink", target: dec.decode(r.data) };
      return { type: "other" };
    },
    async apply(plan, { mtime }) {
      if (!existsSync(path) && create) {
        // A new image: one archive, the directory's entries then the plan's (plan wins).
        const planned = new Set(plan.map((e) => e.path.slice(1)));
        atomicWrite(
          path,
          writeNewc([
            ...create.base.filter((e) => !planned.has(e.path.replace(/^\/+/, ""))),
            ...planToCpio(plan, mtime),
          ]),
        );
        view = null;
        return { changed: plan.length, notes: [] };
      }
      // Append: copy the image (the kernel copies it, no pass through JS), cut
      // off our previous segment, append the new one, rename over the original.
      const bytes = new Uint8Array(readFileSync(path));
      const seg = findSegment(bytes);
      const baseLength = seg >= 0 ? seg : bytes.length;
      const marker: CpioEntry = {
        type: "file",
        path: SEGMENT_MARKER,
        mode: 0o644,
        mtime,
        data: enc.encode(`base=${baseLength}\n`),
      };
      const segment = writeNewc([marker, ...planToCpio(plan, mtime)]);
      replaceFile(path, (tmp) => {
        copyFileSync(path, tmp);
        truncateSync(tmp, baseLength);
        appendFileSync(tmp, segment);
      });
      view = null;
      return {
        changed: plan.length,
        notes: [`appended a ${segment.length}-byte segment after ${baseLength} bytes`],
      };
    },
  };
}
