/**
 * BLAKE3 (hash mode, with extendable output), pure TypeScript, written from
 * the BLAKE3 specification. mycelium derives a node's overlay address from
 * blake3 of its public key; the injector computes it before boot, so the
 * host needs it without a native module. Small inputs only matter here
 * (32-byte keys), but any length works; tested against Debian's b3sum.
 */

const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const BLOCK_LEN = 64;
const CHUNK_LEN = 1024;

const rotr = (x: number, n: number) => ((x >>> n) | (x << (32 - n))) >>> 0;

function g(
  s: Uint32Array,
  a: number,
  b: number,
  c: number,
  d: number,
  mx: number,
  my: number,
): void {
  s[a] = (s[a] as number) + (s[b] as number) + mx;
  s[d] = rotr((s[d] as number) ^ (s[a] as number), 16);
  s[c] = (s[c] as number) + (s[d] as number);
  s[b] = rotr((s[b] as number) ^ (s[c] as number), 12);
  s[a] = (s[a] as number) + (s[b] as number) + my;
  s[d] = rotr((s[d] as number) ^ (s[a] as number), 8);
  s[c] = (s[c] as number) + (s[d] as number);
  s[b] = rotr((s[b] as number) ^ (s[c] as number), 7);
}

/** The compression function: 16 output words. */
function compress(
  cv: Uint32Array,
  m: Uint32Array,
  counter: number,
  blockLen: number,
  flags: number,
): Uint32Array {
  const s = new Uint32Array(16);
  s.set(cv, 0);
  s.set(IV.subarray(0, 4), 8);
  s[12] = counter >>> 0;
  s[13] = Math.floor(counter / 2 ** 32) >>> 0;
  s[14] = blockLen;
  s[15] = flags;
  let w = Uint32Array.from(m);
  for (let r = 0; r < 7; r++) {
    const x = (i: number) => w[i] as number;
    g(s, 0, 4, 8, 12, x(0), x(1));
    g(s, 1, 5, 9, 13, x(2), x(3));
    g(s, 2, 6, 10, 14, x(4), x(5));
    g(s, 3, 7, 11, 15, x(6), x(7));
    g(s, 0, 5, 10, 15, x(8), x(9));
    g(s, 1, 6, 11, 12, x(10), x(11));
    g(s, 2, 7, 8, 13, x(12), x(13));
    g(s, 3, 4, 9, 14, x(14), x(15));
    if (r < 6) w = Uint32Array.from(PERM, (p) => w[p] as number);
  }
  for (let i = 0; i < 8; i++) {
    s[i] = (s[i] as number) ^ (s[i + 8] as number);
    s[i + 8] = (s[i + 8] as number) ^ (cv[i] as number);
  }
  return s;
}

function words(block: Uint8Array): Uint32Array {
  const out = new Uint32Array(16);
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  for (let i = 0; i < 16; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}

interface Output {
  cv: Uint32Array;
  block: Uint32Array;
  counter: number;
  blockLen: number;
  flags: number;
}

const chainingValue = (o: Output) =>
  compress(o.cv, o.block, o.counter, o.blockLen, o.flags).subarray(0, 8);

function chunkOutput(input: Uint8Array, chunkIndex: number): Output {
  let cv = IV.slice();
  const blocks = Math.max(1, Math.ceil(input.length / BLOCK_LEN));
  for (let b = 0; b < blocks - 1; b++) {
    cv = compress(
      cv,
      words(input.subarray(b * BLOCK_LEN, (b + 1) * BLOCK_LEN)),
      chunkIndex,
      BLOCK_LEN,
      b === 0 ? CHUNK_START : 0,
    ).slice(0, 8);
  }
  const last = input.subarray((blocks - 1) * BLOCK_LEN);
  const padded = new Uint8Array(BLOCK_LEN);
  padded.set(last);
  return {
    cv,
    block: words(padded),
    counter: chunkIndex,
    blockLen: last.length,
    flags: CHUNK_END | (blocks === 1 ? CHUNK_START : 0),
  };
}

function parentOutput(left: Uint32Array, right: Uint32Array): Output {
  const block = new Uint32Array(16);
  block.set(left, 0);
  block.set(right, 8);
  return { cv: IV.slice(), block, counter: 0, blockLen: BLOCK_LEN, flags: PARENT };
}

/** BLAKE3 of `input`, `outLen` bytes of output (default 32; more is the XOF). */
export function blake3(input: Uint8Array, outLen = 32): Uint8Array {
  const chunks = Math.max(1, Math.ceil(input.length / CHUNK_LEN));
  const stack: Uint32Array[] = [];
  let out: Output | null = null;
  for (let c = 0; c < chunks; c++) {
    const o = chunkOutput(input.subarray(c * CHUNK_LEN, (c + 1) * CHUNK_LEN), c);
    if (c === chunks - 1) {
      out = o;
      break;
    }
    // Merge completed subtrees: as many as trailing zero bits of the chunk count.
    let cv: Uint32Array = chainingValue(o);
    let total = c + 1;
    while ((total & 1) === 0) {
      cv = chainingValue(parentOutput(stack.pop() as Uint32Array, cv));
      total >>= 1;
    }
    stack.push(cv);
  }
  let root = out as Output;
  while (stack.length) root = parentOutput(stack.pop() as Uint32Array, chainingValue(root));
  const result = new Uint8Array(outLen);
  for (let block = 0, at = 0; at < outLen; block++) {
    const w = compress(root.cv, root.block, block, root.blockLen, root.flags | ROOT);
    for (let i = 0; i < 16 && at < outLen; i++) {
      for (let k = 0; k < 4 && at < outLen; k++)
        result[at++] = ((w[i] as number) >>> (8 * k)) & 0xff;
    }
  }
  return result;
}
