import { describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { logHistory } from "../../lib/log.ts";
import { bindAddresses, type Fetcher, lazyApp } from "./serve.ts";
import type { TerminalData } from "./terminal.ts";

const server = {} as Server<TerminalData>;
const loadLines = () => logHistory().filter((l) => l.includes("app loaded at the first request"));
const req = () => new Request("http://127.0.0.1:9999/health");

describe("lazyApp", () => {
  test("builds the app once, at the first request, and shares it", async () => {
    let builds = 0;
    const app = lazyApp(async () => {
      builds++;
      return { fetch: () => new Response("ok") } satisfies Fetcher;
    });
    expect(builds).toBe(0);
    const [a, b] = await Promise.all([app.fetch(req(), server), app.fetch(req(), server)]);
    expect([await a.text(), await b.text()]).toEqual(["ok", "ok"]);
    await app.fetch(req(), server);
    expect(builds).toBe(1);
  });

  test("logs how long the first load took, once", async () => {
    const before = loadLines();
    const app = lazyApp(async () => ({ fetch: () => new Response("ok") }));
    await app.fetch(req(), server);
    await app.fetch(req(), server);
    const lines = loadLines().slice(before.length);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/hero-init ui: app loaded at the first request in \d+ ms$/);
  });

  test("a failed build answers 503 naming the error, and the next request tries again", async () => {
    let builds = 0;
    const app = lazyApp(async () => {
      if (++builds === 1) throw new Error("cannot find module ./app.ts");
      return { fetch: () => new Response("ok") };
    });
    const failed = await app.fetch(req(), server);
    expect(failed.status).toBe(503);
    expect(await failed.text()).toBe("UI unavailable: cannot find module ./app.ts\n");
    const ok = await app.fetch(req(), server);
    expect(await ok.text()).toBe("ok");
    expect(builds).toBe(2);
  });
});

describe("bindAddresses", () => {
  test("loopback always; a wildcard replaces its family's loopback", () => {
    expect(bindAddresses([])).toEqual(["127.0.0.1", "::1"]);
    expect(bindAddresses(["0.0.0.0", "::1"])).toEqual(["::1", "0.0.0.0"]);
  });
});
