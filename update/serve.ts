/**
 * The bootstrap server behind `hero-init serve DIR`: a static file server
 * for manifests, signatures and binaries (several environments/configs side
 * by side as subdirectories). GET and HEAD only; strong ETags, 304s, single
 * byte ranges, no directory listing, no dotfiles, nothing outside DIR (also
 * through symlinks). Files are streamed from disk, never read whole. One
 * access-log line per request. The HTTP rules are in http.ts (pure).
 */
import { realpathSync, statSync } from "node:fs";
import { relative, sep } from "node:path";
import { HeroError } from "../lib/errors.ts";
import {
  cacheControlFor,
  contentTypeFor,
  etagFor,
  httpDate,
  ifRangeAllows,
  parseRange,
  preconditions,
  safeSegments,
} from "./http.ts";

/** A response and the number of body bytes it will send (for the access log). */
interface Answer {
  res: Response;
  bytes: number;
}

const text = (status: number, msg: string, extra: Record<string, string> = {}): Answer => ({
  res: new Response(`${msg}\n`, {
    status,
    headers: { ...extra, "Content-Type": "text/plain; charset=utf-8" },
  }),
  bytes: msg.length + 1,
});

/** Resolves DIR once: it must exist and be a directory. Throws HeroError. */
export function resolveRoot(dir: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    throw new HeroError("serve-dir", `cannot serve: ${(e as Error).message}`, { file: dir });
  }
  if (!statSync(real).isDirectory()) {
    throw new HeroError("serve-dir", "cannot serve: not a directory", { file: dir });
  }
  return real;
}

/**
 * Finds the file a request path names, or null: the path must be safe
 * (http.ts), its real path (symlinks resolved) must stay inside `root` and
 * contain no dot segment, and it must be a regular file.
 */
function locate(root: string, pathname: string) {
  const segs = safeSegments(pathname);
  if (!segs) return null;
  let real: string;
  try {
    real = realpathSync([root, ...segs].join(sep));
  } catch {
    return null; // ENOENT, ENOTDIR, ELOOP, EACCES, ENAMETOOLONG…
  }
  const rel = relative(root, real);
  if (rel === "" || rel.startsWith("..") || rel.split(sep).some((s) => s.startsWith("."))) {
    return null;
  }
  try {
    const st = statSync(real, { bigint: true });
    if (!st.isFile()) return null;
    return { real, rel: segs.join("/"), size: Number(st.size), st };
  } catch {
    return null;
  }
}

/** A ReadableStream over a file slice that Bun.serve does not recognise as a file (see below). */
function plainStream(file: Blob): ReadableStream<Uint8Array> {
  const reader = file.stream().getReader();
  return new ReadableStream({
    async pull(c) {
      const { done, value } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Answers one request for a file under `root` (a real, resolved directory). */
function answer(req: Request, root: string): Answer {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "method not allowed", { Allow: "GET, HEAD" });
  }
  let pathname: string;
  try {
    pathname = new URL(req.url).pathname;
  } catch {
    return text(400, "bad request");
  }
  const f = locate(root, pathname);
  if (!f) return text(404, "not found");

  const mtimeMs = Number(f.st.mtimeNs / 1_000_000n);
  const v = { etag: etagFor(f.st.size, f.st.mtimeNs), mtimeMs };
  const headers: Record<string, string> = {
    ETag: v.etag,
    "Last-Modified": httpDate(mtimeMs),
    "Cache-Control": cacheControlFor(f.rel),
    "Accept-Ranges": "bytes",
    "X-Content-Type-Options": "nosniff",
  };
  const pre = preconditions(req.headers, v);
  if (pre === 304) return { res: new Response(null, { status: 304, headers }), bytes: 0 };
  if (pre === 412) return text(412, "precondition failed", headers);

  headers["Content-Type"] = contentTypeFor(f.rel);
  const rangeHeader = req.headers.get("range");
  const range = ifRangeAllows(req.headers, v)
    ? parseRange(rangeHeader, f.size)
    : ({ kind: "full" } as const);
  if (range.kind === "unsatisfiable") {
    return text(416, "range not satisfiable", { ...headers, "Content-Range": `bytes */${f.size}` });
  }
  const head = req.method === "HEAD";
  if (range.kind === "partial") {
    const n = range.end - range.start + 1;
    delete headers["Accept-Ranges"]; // as nginx: said on the 200, not repeated on a 206
    headers["Content-Range"] = `bytes ${range.start}-${range.end}/${f.size}`;
    if (head) headers["Content-Length"] = String(n);
    const body = head ? null : Bun.file(f.real).slice(range.start, range.end + 1);
    return { res: new Response(body, { status: 206, headers }), bytes: head ? 0 : n };
  }
  if (head || f.size === 0) {
    headers["Content-Length"] = String(f.size);
    return { res: new Response(head ? null : new Uint8Array(0), { headers }), bytes: 0 };
  }
  // Bun.serve applies Range by itself to a 200 whose body is a file; when we
  // decided on the whole file despite a Range header (If-Range mismatch,
  // several ranges), hand it a plain stream so our decision stands.
  const file = Bun.file(f.real).slice(0, f.size);
  const body = rangeHeader === null ? file : plainStream(file);
  if (rangeHeader !== null) headers["Content-Length"] = String(f.size);
  return { res: new Response(body, { headers }), bytes: f.size };
}

/** Makes a log-safe, bounded rendering of request-controlled text. */
function clean(s: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  const t = s.replace(/[\u0000-\u001f\u007f-\u009f\s"\\]/g, (c) => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** The raw request target's path (before URL normalisation) for the log. */
function rawPath(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(url);
  return m?.[1] || "/";
}

/**
 * A fetch handler serving `dir` (resolved now; throws HeroError when it is
 * not a directory). `log` receives one line per request:
 * `METHOD PATH STATUS BYTES MSms` (prefixed by the client address when the
 * caller passes it).
 */
export function createHandler(
  dir: string,
  log: (line: string) => void = () => {},
): (req: Request, client?: string) => Response {
  const root = resolveRoot(dir);
  return (req, client) => {
    const t0 = performance.now();
    let a: Answer;
    try {
      a = answer(req, root);
    } catch (e) {
      // Only a bug or a failing disk gets here: say so in the log, not to the client.
      log(`error ${clean(rawPath(req.url))}: ${(e as Error).message}`);
      a = text(500, "internal error");
    }
    const ms = (performance.now() - t0).toFixed(1);
    const who = client ? `${client} ` : "";
    log(
      `${who}${clean(req.method, 16)} ${clean(rawPath(req.url))} ${a.res.status} ${a.bytes} ${ms}ms`,
    );
    return a.res;
  };
}

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** The directory to serve. */
  dir: string;
  /** Address to bind; default `::` (every address). */
  hostname?: string;
  /** Port; default 8080, 0 = any free port. */
  port?: number;
  /** Access-log sink; default stdout. */
  log?: (line: string) => void;
}

/** A running bootstrap server. */
export interface BootstrapServer {
  /** Base URL, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  port: number;
  /** Stops listening and closes open connections. */
  stop(): Promise<void>;
}

/** Starts `hero-init serve` on Bun.serve. Throws HeroError for a bad DIR. */
export function startServer(o: ServeOptions): BootstrapServer {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const handle = createHandler(o.dir, log);
  const server = Bun.serve({
    hostname: o.hostname ?? "::",
    port: o.port ?? 8080,
    development: false,
    idleTimeout: 30,
    maxRequestBodySize: 64 * 1024,
    fetch(req, srv) {
      return handle(req, srv.requestIP(req)?.address);
    },
    error(e) {
      log(`error: ${e.message}`);
      return new Response("internal error\n", { status: 500 });
    },
  });
  const h = server.hostname ?? "";
  const host = h.includes(":") ? `[${h}]` : h;
  return {
    url: `http://${host}:${server.port}/`,
    port: server.port ?? 0,
    stop: () => server.stop(true),
  };
}
