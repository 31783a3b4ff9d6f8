/**
 * Rewrites a dynamically linked x86-64 ELF executable (the Bun-compiled
 * hero-init) so that it runs on a rootfs that has no glibc at all.
 *
 * The program interpreter path (PT_INTERP) is replaced, in place, by
 * {@link LAYOUT.privateLoader}, and the unused DT_DEBUG entry of the dynamic section
 * becomes DT_RUNPATH="$ORIGIN", so the loader finds libc.so.6 & co next to the
 * binary in the private directory. Nothing moves: every offset, section and
 * the `.bun` payload stay where they were, which is why we do not use
 * patchelf (it relocates .dynstr and leaves DT_VERDEF stale on Bun binaries,
 * NixOS/patchelf#664). Both strings live in the old .interp bytes; the
 * DT_RUNPATH value is an offset from DT_STRTAB, taken modulo 2^64 as the
 * loader computes it. Pure: bytes in, bytes out; a file it cannot patch
 * throws a HeroError "elf.*" naming why (not-elf64, no-interp, no-dynamic,
 * too-small, no-debug-slot).
 */

import { elfInterpreter, PT_INTERP } from "../../lib/elf.ts";
import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";

const RUNPATH = "$ORIGIN";

const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_DEBUG = 21n;
const DT_RUNPATH = 29n;

interface Phdr {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

function programHeaders(view: DataView): Phdr[] {
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  const out: Phdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const base = phoff + i * phentsize;
    out.push({
      type: view.getUint32(base, true),
      offset: Number(view.getBigUint64(base + 8, true)),
      vaddr: view.getBigUint64(base + 16, true),
      filesz: Number(view.getBigUint64(base + 32, true)),
    });
  }
  return out;
}

/** Reads the PT_INTERP string of an ELF64 executable, or null if it has none. */
export function readInterpreter(elf: Uint8Array): string | null {
  checkedView(elf);
  return elfInterpreter(elf);
}

function checkedView(elf: Uint8Array): DataView {
  const isElf64 =
    elf.length >= 64 &&
    elf[0] === 0x7f &&
    elf[1] === 0x45 &&
    elf[2] === 0x4c &&
    elf[3] === 0x46 &&
    elf[4] === 2 &&
    elf[5] === 1;
  if (!isElf64) throw new HeroError("elf.not-elf64", "not a little-endian ELF64 file");
  return new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
}

/**
 * Returns a patched copy of `elf` whose interpreter is {@link LAYOUT.privateLoader}
 * and whose libraries are searched in the binary's own directory.
 */
export function usePrivateLoader(elf: Uint8Array): Uint8Array {
  const out = new Uint8Array(elf);
  const view = checkedView(out);
  const phdrs = programHeaders(view);
  const interp = phdrs.find((p) => p.type === PT_INTERP);
  if (!interp) throw new HeroError("elf.no-interp", "executable has no PT_INTERP (static?)");
  const dyn = phdrs.find((p) => p.type === PT_DYNAMIC);
  if (!dyn) throw new HeroError("elf.no-dynamic", "executable has no PT_DYNAMIC");

  const enc = new TextEncoder();
  const loader = enc.encode(`${LAYOUT.privateLoader}\0`);
  const runpath = enc.encode(`${RUNPATH}\0`);
  if (loader.length + runpath.length > interp.filesz) {
    throw new HeroError(
      "elf.too-small",
      `PT_INTERP holds ${interp.filesz} bytes; need ${loader.length + runpath.length}`,
    );
  }
  out.fill(0, interp.offset, interp.offset + interp.filesz);
  out.set(loader, interp.offset);
  out.set(runpath, interp.offset + loader.length);
  const runpathVaddr = interp.vaddr + BigInt(loader.length);

  // Walk the dynamic section: find DT_STRTAB and a slot to reuse.
  let strtab: bigint | null = null;
  let slot = -1;
  for (let at = dyn.offset; at + 16 <= dyn.offset + dyn.filesz; at += 16) {
    const tag = view.getBigInt64(at, true);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = view.getBigUint64(at + 8, true);
    if (tag === DT_RUNPATH || tag === DT_RPATH || (tag === DT_DEBUG && slot < 0)) slot = at;
  }
  if (strtab === null) throw new HeroError("elf.no-dynamic", "dynamic section has no DT_STRTAB");
  if (slot < 0) throw new HeroError("elf.no-debug-slot", "no DT_DEBUG/DT_RUNPATH entry to reuse");
  view.setBigInt64(slot, DT_RUNPATH, true);
  view.setBigUint64(slot + 8, BigInt.asUintN(64, runpathVaddr - strtab), true);
  return out;
}

/** glibc symbol versions an executable needs: the GLIBC_* names in its dynamic string table. */
export function neededGlibcVersions(elf: Uint8Array): string[] {
  const view = checkedView(elf);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  const loads: { offset: number; vaddr: bigint; filesz: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const b = phoff + i * phentsize;
    if (view.getUint32(b, true) === 1) {
      loads.push({
        offset: Number(view.getBigUint64(b + 8, true)),
        vaddr: view.getBigUint64(b + 16, true),
        filesz: Number(view.getBigUint64(b + 32, true)),
      });
    }
  }
  const dyn = programHeaders(view).find((p) => p.type === PT_DYNAMIC);
  if (!dyn) return [];
  let strtab = 0n;
  let strsz = 0;
  for (let at = dyn.offset; at + 16 <= dyn.offset + dyn.filesz; at += 16) {
    const tag = view.getBigInt64(at, true);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = view.getBigUint64(at + 8, true);
    if (tag === 10n) strsz = Number(view.getBigUint64(at + 8, true)); // DT_STRSZ
  }
  const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + BigInt(l.filesz));
  if (!seg) return [];
  const off = seg.offset + Number(strtab - seg.vaddr);
  const text = new TextDecoder("latin1").decode(elf.subarray(off, off + strsz));
  return [...new Set(text.match(/GLIBC_2\.\d+(\.\d+)?/g) ?? [])].sort();
}
