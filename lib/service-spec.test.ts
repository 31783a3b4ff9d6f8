import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "./errors.ts";
import { parseServiceFile, signalName } from "./service-spec.ts";

const CORPUS = join(import.meta.dir, "../test/fixtures/zinit");
const read = (sub: string, f: string) => readFileSync(join(CORPUS, sub, f), "utf8");

function errorOf(sub: string, f: string): InputError {
  try {
    parseServiceFile(read(sub, f), f);
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error(`${f} parsed but should not have`);
}

describe("zinit service files: valid corpus", () => {
  const files = readdirSync(join(CORPUS, "valid")).filter((f) => f.endsWith(".yaml"));
  test("the corpus has at least 13 valid and 9 invalid files", () => {
    expect(files.length).toBeGreaterThanOrEqual(13);
    expect(readdirSync(join(CORPUS, "invalid")).length).toBeGreaterThanOrEqual(9);
  });
  for (const f of files) {
    test(`${f} parses`, () => {
      expect(parseServiceFile(read("valid", f), f).exec.length).toBeGreaterThan(0);
    });
  }

  test("defaults match zinit's", () => {
    const s = parseServiceFile(read("valid", "cron.yaml"), "cron.yaml");
    expect(s).toMatchObject({
      oneshot: false,
      after: [],
      signal: { stop: "sigterm" },
      dir: "/",
      shutdown_timeout: 10,
      test: "",
    });
    expect(parseServiceFile("exec: x\n", "x.yaml").log).toBe("ring");
  });

  test("fields are read as written", () => {
    const pg = parseServiceFile(read("valid", "postgres.yaml"), "postgres.yaml");
    expect(pg.after).toEqual(["mount-data"]);
    expect(pg.shutdown_timeout).toBe(60);
    expect(pg.signal.stop).toBe("sigint");
    expect(pg.env).toEqual({ PGDATA: "/var/lib/postgresql/15/main", LANG: "C.UTF-8" });
  });

  test("env numbers and booleans become strings", () => {
    expect(parseServiceFile(read("valid", "network.yaml"), "n.yaml").env).toEqual({
      MTU: "1500",
      DEBUG: "false",
    });
  });

  test("hero-init extras get their defaults and can be set", () => {
    const m = parseServiceFile(read("valid", "mycelium.yaml"), "m.yaml");
    expect(m.restart).toEqual({
      delay: 200,
      max_delay: 10000,
      reset_after: 10,
      limit: 10,
      window: 60,
    });
    expect(m.log_file).toEqual({ max_size: 1048576, keep: 3 });
  });
});

describe("zinit service files: invalid corpus names file, line and field", () => {
  const cases: [string, string, number | undefined, RegExp][] = [
    ["no-exec.yaml", "exec", undefined, /is required/],
    ["bad-oneshot.yaml", "oneshot", 2, /true or false/],
    ["bad-log.yaml", "log", 2, /"none", "ring" or "stdout"/],
    ["bad-signal.yaml", "signal.stop", 3, /unknown signal/],
    ["bad-after.yaml", "after", 2, /Expected Array/],
    ["bad-dir.yaml", "dir", 2, /absolute path/],
    ["bad-timeout.yaml", "shutdown_timeout", 2, /Invalid value/],
  ];
  for (const [file, field, line, msg] of cases) {
    test(file, () => {
      const e = errorOf("invalid", file);
      expect(e.where).toMatchObject({ file, field, ...(line ? { line } : {}) });
      expect(e.message).toMatch(msg);
    });
  }
  test("YAML syntax error", () => {
    const e = errorOf("invalid", "bad-yaml.yaml");
    expect(e.code).toBe("yaml-syntax");
    expect(e.where.file).toBe("bad-yaml.yaml");
  });
  test("a list instead of a mapping", () => {
    expect(errorOf("invalid", "not-a-map.yaml").message).toMatch(/mapping/);
  });
});

describe("signal names", () => {
  test("zinit-style spellings", () => {
    expect(signalName("sigterm")).toBe("SIGTERM");
    expect(signalName("KILL")).toBe("SIGKILL");
    expect(signalName("9")).toBe("SIGKILL");
    expect(signalName("SIGNOPE")).toBeNull();
  });
});
