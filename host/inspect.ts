/**
 * What the injector needs to know about a rootfs before planning: whether
 * it has a glibc new enough for hero-init (else the private loader goes in),
 * and follows symlinks with the format's own lookups.
 */
import type { Existing, RootfsFormat } from "./formats/types.ts";

/** Follows symlinks (inside the rootfs) up to 16 hops. */
export async function resolve(
  fmt: RootfsFormat,
  path: string,
): Promise<{ path: string; entry: Existing } | null> {
  let p = path;
  for (let i = 0; i < 16; i++) {
    const e = await fmt.lookup(p);
    if (!e) return null;
    if (e.type !== "symlink") return { path: p, entry: e };
    const dir = p.slice(0, p.lastIndexOf("/")) || "/";
    p = e.target.startsWith("/") ? e.target : `${dir}/${e.target}`;
    p = normalize(p);
  }
  return null;
}

function normalize(p: string): string {
  const out: string[] = [];
  for (const s of p.split("/")) {
    if (!s || s === ".") continue;
    if (s === "..") out.pop();
    else out.push(s);
  }
  return `/${out.join("/")}`;
}

const LOADERS = ["/lib64/ld-linux-x86-64.so.2"];
const LIBCS = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib64/libc.so.6",
  "/lib/libc.so.6",
  "/usr/lib/libc.so.6",
];

/** Why a rootfs cannot run the stock hero-init, or null if it can. */
export async function glibcProblem(
  fmt: RootfsFormat,
  needed: readonly string[],
): Promise<string | null> {
  let loader = false;
  for (const l of LOADERS) if (await resolve(fmt, l)) loader = true;
  if (!loader) return "no glibc loader at /lib64/ld-linux-x86-64.so.2";
  for (const c of LIBCS) {
    const hit = await resolve(fmt, c);
    if (hit?.entry.type !== "file") continue;
    const text = new TextDecoder("latin1").decode(await hit.entry.data());
    const missing = needed.filter((v) => !text.includes(v));
    return missing.length ? `glibc at ${c} lacks ${missing.join(", ")}` : null;
  }
  return "no libc.so.6 found";
}
