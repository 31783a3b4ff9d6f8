/** Builds BOOTREPLY datagrams for the DHCP client's tests (a server's side, hand-rolled). */

export interface ReplySpec {
  type: number;
  xid: number;
  mac: Uint8Array;
  yiaddr?: string;
  /** Raw options [code, value bytes], in order; END is appended unless `noEnd`. */
  options?: [number, number[]][];
  noEnd?: boolean;
  /** Bytes written into sname (44..108) and file (108..236), for option overload. */
  sname?: number[];
  file?: number[];
}

export const ip = (s: string): number[] => s.split(".").map(Number);
export const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

/** A reply; option 53 (type) comes first, then `options`. */
export function buildReply(s: ReplySpec): Uint8Array {
  const opts: number[] = [53, 1, s.type];
  for (const [code, value] of s.options ?? []) opts.push(code, value.length, ...value);
  if (!s.noEnd) opts.push(255);
  const b = new Uint8Array(240 + opts.length);
  const dv = new DataView(b.buffer);
  b[0] = 2;
  b[1] = 1;
  b[2] = 6;
  dv.setUint32(4, s.xid >>> 0);
  b.set(ip(s.yiaddr ?? "0.0.0.0"), 16);
  b.set(s.mac.subarray(0, 6), 28);
  if (s.sname) b.set(s.sname.slice(0, 64), 44);
  if (s.file) b.set(s.file.slice(0, 128), 108);
  dv.setUint32(236, 0x63825363);
  b.set(opts, 240);
  return b;
}

/** The xid and options of a request the client sent (for a test server to answer it). */
export function parseRequest(p: Uint8Array): {
  xid: number;
  type: number;
  opts: Map<number, number[]>;
} {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const opts = new Map<number, number[]>();
  let i = 240;
  while (i < p.length && p[i] !== 255) {
    if (p[i] === 0) {
      i++;
      continue;
    }
    const len = p[i + 1] as number;
    opts.set(p[i] as number, [...p.subarray(i + 2, i + 2 + len)]);
    i += 2 + len;
  }
  return { xid: dv.getUint32(4), type: opts.get(53)?.[0] ?? 0, opts };
}
