/**
 * The file endpoints: GET/HEAD files (bytes with mode/mtime/owner headers,
 * or a symlink's target), PUT files (an atomic write, or a symlink with
 * ?symlink=), GET stat. Every one needs ?path= (absolute, checked before the
 * method, as it always was). files.ts does the filesystem work.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { agentError, parseId, parseMode, parseMtime, pathError } from "../../lib/agent-protocol.ts";
import { getFile, type PutOptions, putFile, putSymlink, statPath } from "./files.ts";
import { type AgentHono, type AgentLog, fail, methodNotAllowed, noHead, queryOf } from "./http.ts";

/** What the file routes need. */
export interface FileRouteDeps {
  /** Largest file PUT accepted, bytes. */
  maxFileSize: number;
  log: AgentLog;
}

/** The metadata of a PUT (query parameters); throws agentError 400 naming the bad parameter. */
export function parsePutQuery(q: URLSearchParams): Omit<PutOptions, "maxSize" | "declaredSize"> {
  try {
    return {
      mode: parseMode(q.get("mode")),
      mtime: parseMtime(q.get("mtime")),
      uid: parseId("uid", q.get("uid")),
      gid: parseId("gid", q.get("gid")),
      mkdir: q.get("mkdir") === "1",
    };
  } catch (e) {
    throw agentError(400, (e as Error).message);
  }
}

/** A Content-Length made only of digits, else null (then only the streaming limit applies). */
export function declaredLength(header: string | undefined): number | null {
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : null;
}

/** 400 unless ?path= is an acceptable remote path. */
const requirePath: MiddlewareHandler<AgentHono> = async (c, next) => {
  const bad = pathError(queryOf(c).get("path"));
  if (bad) return fail(c, 400, bad);
  await next();
};

/** The checked ?path=. */
const pathOf = (q: URLSearchParams) => q.get("path") as string;

/** files and stat, relative to the API prefix. */
export function fileRoutes(d: FileRouteDeps): Hono<AgentHono> {
  const r = new Hono<AgentHono>();
  r.use("/files", requirePath);
  r.use("/stat", requirePath);

  const statOnlyGet = methodNotAllowed("stat: use GET", "GET");
  r.get("/stat", noHead(statOnlyGet), async (c) => {
    const q = queryOf(c);
    return c.json(await statPath(pathOf(q), q.get("follow") === "1"), 200);
  });
  r.all("/stat", statOnlyGet);

  // HEAD too: the metadata headers without the body.
  r.get("/files", (c) => {
    const q = queryOf(c);
    return getFile(pathOf(q), q.get("nofollow") === "1", c.req.method === "HEAD");
  });

  r.put("/files", async (c) => {
    const q = queryOf(c);
    const file = pathOf(q);
    const meta = parsePutQuery(q);
    const target = q.get("symlink");
    if (target !== null) {
      c.req.raw.body?.cancel().catch(() => {});
      d.log("info", `symlink ${file} for ${c.get("ip")}`);
      return c.json(await putSymlink(file, target, meta), 201);
    }
    const res = await putFile(file, c.req.raw.body, {
      ...meta,
      maxSize: d.maxFileSize,
      declaredSize: declaredLength(c.req.header("content-length")),
    });
    d.log("info", `wrote ${file} (${res.size} bytes) for ${c.get("ip")}`);
    return c.json(res, 201);
  });

  r.all("/files", (c) =>
    fail(c, 405, `files: use GET or PUT (got ${c.req.method})`, { allow: "GET, PUT" }),
  );
  return r;
}
