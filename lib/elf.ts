/**
 * Reading ELF headers (pure). The guest uses it to decide whether a
 * glibc-linked binary needs hero-init's private loader; the host's ELF
 * patcher (host/elf/private-loader.ts) reads the same interpreter. Every
 * offset is checked against the bytes given: a hostile or truncated file
 * gives null, never an exception.
 */

/** Program header type of the interpreter path. */
export const PT_INTERP = 3;

/**
 * Pure: the program interpreter (PT_INTERP) named by the first bytes of an
 * ELF64 little-endian file; null for a static binary, a script, another
 * format, or headers beyond `head`.
 */
export function elfInterpreter(head: Uint8Array): string | null {
  const isElf64Le =
    head.length >= 64 &&
    head[0] === 0x7f &&
    head[1] === 0x45 &&
    head[2] === 0x4c &&
    head[3] === 0x46 &&
    head[4] === 2 &&
    head[5] === 1;
  if (!isElf64Le) return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (phentsize < 56 || at + 56 > head.length) return null;
    if (view.getUint32(at, true) !== PT_INTERP) continue;
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    if (size === 0 || offset + size > head.length) return null;
    const bytes = head.subarray(offset, offset + size);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  }
  return null;
}
