/**
 * files-routes.ts through app.request, the sub-app mounted alone on a
 * temporary directory: PUT/GET/HEAD/stat round trips, symlinks, the query
 * parsing, and the order of answers (path 400 before method 405).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { API_PREFIX } from "../../lib/agent-protocol.ts";
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import { declaredLength, fileRoutes, parsePutQuery } from "./files-routes.ts";
import { type AgentHono, answerError, noSuchEndpoint } from "./http.ts";

const dir = mkdtempSync(join(tmpdir(), "hero-files-routes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const logs: string[] = [];
const app = new Hono<AgentHono>();
app.use(async (c, next) => {
  c.set("ip", "127.0.0.1");
  await next();
});
app.route(API_PREFIX, fileRoutes({ maxFileSize: 64, log: (_l, m) => void logs.push(m) }));
app.notFound(noSuchEndpoint);
app.onError(answerError(() => {}));

const at = (p: string, extra = "") => `?path=${encodeURIComponent(p)}${extra}`;
const errorOf = async (r: Response) => ((await r.json()) as { error: string }).error;

describe("parsePutQuery and declaredLength", () => {
  test("metadata from the query; absent is null", () => {
    expect(
      parsePutQuery(new URLSearchParams("mode=0750&mtime=1700000000.5&uid=0&gid=12&mkdir=1")),
    ).toEqual({ mode: 0o750, mtime: 1700000000.5, uid: 0, gid: 12, mkdir: true });
    expect(parsePutQuery(new URLSearchParams(""))).toEqual({
      mode: null,
      mtime: null,
      uid: null,
      gid: null,
      mkdir: false,
    });
  });

  test("a bad value is agent error 400 naming the parameter", () => {
    for (const [q, name] of [
      ["mode=99999", "mode"],
      ["mtime=abc", "mtime"],
      ["uid=-1", "uid"],
      ["gid=x", "gid"],
    ] as const) {
      let err: unknown;
      try {
        parsePutQuery(new URLSearchParams(q));
      } catch (e) {
        err = e;
      }
      expect(isHeroError(err, "agent")).toBe(true);
      expect((err as HeroError).detail.status).toBe(400);
      expect((err as HeroError).message).toContain(name);
    }
  });

  test("only a plain number of bytes counts as a declared length", () => {
    expect(declaredLength("123")).toBe(123);
    expect(declaredLength(undefined)).toBeNull();
    expect(declaredLength("12x")).toBeNull();
    expect(declaredLength("-1")).toBeNull();
  });
});

describe("files", () => {
  test("PUT then GET and HEAD keep bytes, mode and mtime", async () => {
    const f = join(dir, "sub", "a.txt");
    const put = await app.request(
      `/agent/v1/files${at(f, "&mode=0640&mtime=1700000000&mkdir=1")}`,
      {
        method: "PUT",
        body: "hello",
      },
    );
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({ path: f, size: 5, mode: "0640", mtime: 1700000000 });
    expect(readFileSync(f, "utf8")).toBe("hello");
    expect(statSync(f).mode & 0o7777).toBe(0o640);
    expect(logs).toContain(`wrote ${f} (5 bytes) for 127.0.0.1`);

    const get = await app.request(`/agent/v1/files${at(f)}`);
    expect(get.status).toBe(200);
    expect(get.headers.get("x-hero-mode")).toBe("0640");
    expect(get.headers.get("x-hero-mtime")).toBe("1700000000");
    expect(get.headers.get("x-hero-type")).toBe("file");
    expect(get.headers.get("content-type")).toBe("application/octet-stream");
    expect(await get.text()).toBe("hello");

    const head = await app.request(`/agent/v1/files${at(f)}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-hero-mode")).toBe("0640");
    expect(head.headers.get("content-length")).toBe("5");
    expect(await head.text()).toBe("");
  });

  test("a body over maxFileSize is 413 and leaves nothing", async () => {
    const f = join(dir, "big.bin");
    const r = await app.request(`/agent/v1/files${at(f)}`, {
      method: "PUT",
      body: new Uint8Array(65),
    });
    expect(r.status).toBe(413);
    expect(await errorOf(r)).toContain("file too large");
    expect(() => lstatSync(f)).toThrow();
  });

  test("symlinks: PUT ?symlink=, GET with nofollow gives the target", async () => {
    const link = join(dir, "link");
    const put = await app.request(`/agent/v1/files${at(link, "&symlink=a%20b")}`, {
      method: "PUT",
    });
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({ type: "symlink", target: "a b" });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const get = await app.request(`/agent/v1/files${at(link, "&nofollow=1")}`);
    expect(get.status).toBe(200);
    expect(get.headers.get("x-hero-type")).toBe("symlink");
    expect(get.headers.get("x-hero-symlink-target")).toBe("a%20b");
  });

  test("bad metadata is 400; a missing file 404; a missing parent 404 naming mkdir=1", async () => {
    const f = join(dir, "x");
    let r = await app.request(`/agent/v1/files${at(f, "&mode=0999")}`, { method: "PUT", body: "" });
    expect(r.status).toBe(400);
    expect(await errorOf(r)).toContain("mode must be octal");
    r = await app.request(`/agent/v1/files${at(join(dir, "missing"))}`);
    expect(r.status).toBe(404);
    r = await app.request(`/agent/v1/files${at(join(dir, "no", "x"))}`, {
      method: "PUT",
      body: "",
    });
    expect(r.status).toBe(404);
    expect(await errorOf(r)).toContain("mkdir=1");
  });

  test("the path is checked before the method; other methods are 405 with Allow", async () => {
    let r = await app.request("/agent/v1/files?path=relative", { method: "DELETE" });
    expect(r.status).toBe(400);
    expect(await errorOf(r)).toContain("absolute");
    r = await app.request("/agent/v1/files", { method: "DELETE" });
    expect(r.status).toBe(400);
    expect(await errorOf(r)).toContain("path is required");
    r = await app.request(`/agent/v1/files${at(dir)}`, { method: "DELETE" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, PUT");
    expect(await errorOf(r)).toBe("files: use GET or PUT (got DELETE)");
  });
});

describe("stat", () => {
  test("lstat by default, stat with follow=1", async () => {
    const link = join(dir, "dirlink");
    await app.request(`/agent/v1/files${at(link, `&symlink=${encodeURIComponent(dir)}`)}`, {
      method: "PUT",
    });
    let r = await app.request(`/agent/v1/stat${at(link)}`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ type: "symlink", target: dir });
    r = await app.request(`/agent/v1/stat${at(link, "&follow=1")}`);
    expect(await r.json()).toMatchObject({ type: "directory" });
  });

  test("anything but GET (HEAD too) is 405 with Allow: GET; the path comes first", async () => {
    for (const method of ["POST", "PUT", "HEAD"]) {
      const r = await app.request(`/agent/v1/stat${at(dir)}`, { method });
      expect(r.status).toBe(405);
      expect(r.headers.get("allow")).toBe("GET");
      if (method !== "HEAD") expect(await errorOf(r)).toBe("stat: use GET");
    }
    expect((await app.request("/agent/v1/stat", { method: "POST" })).status).toBe(400);
  });
});
