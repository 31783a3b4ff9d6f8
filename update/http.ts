/**
 * The HTTP rules of the bootstrap server (pure): which request paths may be
 * served, content types, cache policy, ETags, conditional requests (RFC 9110
 * §13) and byte ranges (§14). update/serve.ts applies them to files; the
 * nginx config in docs/nginx-bootstrap.conf implements the same rules.
 */
import { HeroError } from "../lib/errors.ts";

/**
 * Splits a URL pathname (still percent-encoded) into decoded segments that
 * are safe to join under the served directory, or null when it must not be
 * served: no `.`/`..`, no dotfiles, no empty segments (so no directory
 * listing and no `//`), no `/`, `\` or control characters hidden in
 * percent-encoding, at most 32 segments of at most 255 bytes.
 */
export function safeSegments(pathname: string): string[] | null {
  if (!pathname.startsWith("/") || pathname.length > 4096) return null;
  const raw = pathname.slice(1).split("/");
  if (raw.length > 32) return null;
  const out: string[] = [];
  for (const r of raw) {
    let s: string;
    try {
      s = decodeURIComponent(r);
    } catch {
      return null;
    }
    if (s === "" || s.startsWith(".") || s.length > 255) return null;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (/[/\\\u0000-\u001f\u007f]/.test(s)) return null;
    out.push(s);
  }
  return out;
}

const TYPES: Record<string, string> = {
  toml: "application/toml; charset=utf-8",
  minisig: "text/plain; charset=utf-8",
  pub: "text/plain; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  sha256: "text/plain; charset=utf-8",
  json: "application/json",
  gz: "application/gzip",
  tgz: "application/gzip",
  xz: "application/x-xz",
  zst: "application/zstd",
  tar: "application/x-tar",
};

/** Content-Type by extension; binaries (no or unknown extension) are application/octet-stream. */
export function contentTypeFor(name: string): string {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return "application/octet-stream";
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? "application/octet-stream";
}

/** Extensions of documents that change in place (manifests, signatures, keys). */
const MUTABLE_EXT = /\.(toml|minisig|pub|json|txt|sha256)$/i;
/** A version in a name or directory (`mycelium-0.5.6`, `v1.2/…`, `x_2.0`) or a sha256 name. */
const VERSIONED = /(^|[/_@-])v?[0-9]+\.[0-9]+|(^|\/)[0-9a-f]{64}([./]|$)/;

/**
 * Cache-Control for a served path (relative, `/`-separated): manifests and
 * signatures are `no-cache` (caches may keep them but must revalidate, which
 * costs a 304); a file whose name carries a version or a sha256 is
 * immutable for a year; anything else is revalidated too.
 */
export function cacheControlFor(relPath: string): string {
  if (MUTABLE_EXT.test(relPath)) return "no-cache";
  if (VERSIONED.test(relPath)) return "public, max-age=31536000, immutable";
  return "no-cache";
}

/**
 * A strong ETag from size and modification time in nanoseconds:
 * `"<mtime ns hex>-<size hex>"` (nginx's shape, with ns instead of s so a
 * file replaced within the same second still gets a new tag).
 */
export function etagFor(size: bigint | number, mtimeNs: bigint): string {
  return `"${mtimeNs.toString(16)}-${BigInt(size).toString(16)}"`;
}

/** An RFC 9110 HTTP-date (IMF-fixdate) for a time in ms. */
export function httpDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toUTCString();
}

/** Parses an HTTP-date (IMF-fixdate or the obsolete forms Date.parse knows) to ms, or undefined. */
export function parseHttpDate(v: string | null): number | undefined {
  if (!v || v.length > 64 || !/\d{2}:\d{2}:\d{2}/.test(v)) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** The entity-tags of an If-Match / If-None-Match list; "*" stands for any. */
function tagList(v: string): string[] | "*" {
  if (v.trim() === "*") return "*";
  return v.match(/(W\/)?"[^"]*"/g) ?? [];
}

const opaque = (t: string) => (t.startsWith("W/") ? t.slice(2) : t);

/** Weak comparison (If-None-Match): equal opaque tags, W/ ignored. */
export function matchesWeak(header: string, etag: string): boolean {
  const tags = tagList(header);
  return tags === "*" || tags.some((t) => opaque(t) === opaque(etag));
}

/** Strong comparison (If-Match, If-Range): neither tag weak, and equal. */
export function matchesStrong(header: string, etag: string): boolean {
  const tags = tagList(header);
  if (tags === "*") return true;
  return !etag.startsWith("W/") && tags.some((t) => t === etag);
}

/** What a file looks like to the conditional-request rules. */
export interface Validators {
  etag: string;
  /** Modification time in ms. */
  mtimeMs: number;
}

/**
 * Evaluates the preconditions of a GET/HEAD in RFC 9110 §13.2.2 order:
 * If-Match / If-Unmodified-Since (→ 412), then If-None-Match or, without it,
 * If-Modified-Since (→ 304). Returns the status to answer, or null to go on.
 */
export function preconditions(h: Headers, v: Validators): 304 | 412 | null {
  const secs = Math.floor(v.mtimeMs / 1000) * 1000;
  const ifMatch = h.get("if-match");
  if (ifMatch !== null) {
    if (!matchesStrong(ifMatch, v.etag)) return 412;
  } else {
    const ius = parseHttpDate(h.get("if-unmodified-since"));
    if (ius !== undefined && secs > ius) return 412;
  }
  const inm = h.get("if-none-match");
  if (inm !== null) return matchesWeak(inm, v.etag) ? 304 : null;
  const ims = parseHttpDate(h.get("if-modified-since"));
  if (ims !== undefined && secs <= ims) return 304;
  return null;
}

/**
 * If-Range (§13.1.5): true when the Range may be honoured, i.e. there is no
 * If-Range or it names the current representation (a strong ETag, or a date
 * equal to Last-Modified).
 */
export function ifRangeAllows(h: Headers, v: Validators): boolean {
  const ir = h.get("if-range");
  if (ir === null) return true;
  const t = ir.trim();
  if (t.startsWith('"') || t.startsWith("W/")) return matchesStrong(t, v.etag);
  const d = parseHttpDate(t);
  return d !== undefined && d === Math.floor(v.mtimeMs / 1000) * 1000;
}

/** The outcome of a Range header against a representation of `size` bytes. */
export type RangeResult =
  /** No usable Range (absent, malformed, other unit or several ranges): send it all. */
  | { kind: "full" }
  /** One satisfiable range, inclusive bounds. */
  | { kind: "partial"; start: number; end: number }
  /** Syntactically valid but outside the representation: 416. */
  | { kind: "unsatisfiable" };

/**
 * Parses a single `bytes=` range (§14.1.2): `a-b`, `a-`, `-n`. Several
 * ranges are answered with the whole file (allowed by §14.2), as are
 * malformed headers.
 */
export function parseRange(header: string | null, size: number): RangeResult {
  if (header === null || header.length > 200) return { kind: "full" };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: "full" };
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return { kind: "full" };
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== "" && Number(b) < start) return { kind: "full" };
  if (start >= size) return { kind: "unsatisfiable" };
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  return { kind: "partial", start, end };
}

/**
 * Parses `--listen`: `ADDR:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (the
 * address then defaults to `::`, every address). Throws HeroError.
 */
export function parseListen(s: string): { hostname: string; port: number } {
  let host: string;
  let port: string;
  const v6 = /^\[([0-9A-Fa-f:.%a-z]*)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1] ?? "";
    port = v6[2] ?? "";
  } else if (/^\d+$/.test(s)) {
    host = "";
    port = s;
  } else {
    const i = s.lastIndexOf(":");
    if (i < 0 || s.indexOf(":") !== i) {
      throw new HeroError("listen", `expected ADDR:PORT or [IPv6]:PORT, got "${s}"`, {
        field: "--listen",
      });
    }
    host = s.slice(0, i);
    port = s.slice(i + 1);
    if (host !== "" && !/^[A-Za-z0-9.-]+$/.test(host)) {
      throw new HeroError("listen", `bad address "${host}"`, { field: "--listen" });
    }
  }
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n > 65535) {
    throw new HeroError("listen", `bad port "${port}" (0-65535)`, { field: "--listen" });
  }
  return { hostname: host === "" ? "::" : host, port: n };
}
