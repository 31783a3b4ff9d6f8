import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type HeroError, isHeroError } from "./errors.ts";
import {
  everySeconds,
  MAX_SERVICE_FILE,
  parseServiceFile,
  parseServiceYaml,
  SERVICE_NAME_RE,
  serviceFileText,
  signalName,
} from "./service-spec.ts";

const CORPUS = join(import.meta.dir, "../test/fixtures/zinit");
const read = (sub: string, f: string) => readFileSync(join(CORPUS, sub, f), "utf8");

function errorOf(sub: string, f: string): HeroError {
  try {
    parseServiceFile(read(sub, f), f);
  } catch (e) {
    if (isHeroError(e, "input")) return e;
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

/** The HeroError `fn` throws (fails the test if it returns). */
function thrown(fn: () => unknown): HeroError {
  try {
    fn();
  } catch (e) {
    if (isHeroError(e, "input")) return e;
    throw e;
  }
  throw new Error("no error thrown");
}

describe("service YAML from outside is bounded before it is used", () => {
  const big = "x".repeat(60_000);
  // 60 KB aliased 10 × 10 × 10: 60 MB once expanded, 60 KB of text.
  const bomb = `a: &a "${big}"\nb: &b [${Array(10).fill("*a")}]\nc: &c [${Array(10).fill("*b")}]\nd: [${Array(10).fill("*c")}]\nexec: /bin/true\n`;

  test("an alias bomb is refused by the walk, which stops at its budget", () => {
    const e = thrown(() => parseServiceYaml(bomb, "bomb.yaml"));
    expect(e.code).toBe("size");
    expect(e.message).toMatch(/too large once expanded/);
    expect(e.where).toMatchObject({ file: "bomb.yaml", line: 2 });
  });

  test("aliases within the budget are fine (env shared between keys)", () => {
    const s = parseServiceFile(`exec: x\nenv:\n  A: &v "${"y".repeat(100)}"\n  B: *v\n`, "ok.yaml");
    expect(s.env.B).toBe("y".repeat(100));
  });

  test("a file over MAX_SERVICE_FILE bytes is refused before parsing", () => {
    const e = thrown(() => parseServiceFile(`exec: x\n#${"c".repeat(MAX_SERVICE_FILE)}`, "s.yaml"));
    expect(e.code).toBe("size");
    expect(e.message).toMatch(/limit 262144/);
  });

  test("a file of MAX_SERVICE_FILE bytes without aliases is never over the expanded budget", () => {
    // The densest file: one-character list items, as many as fit.
    const text = `exec: x\nafter: [a${",a".repeat((MAX_SERVICE_FILE - 32) / 2)}]\n`;
    expect(text.length).toBeLessThanOrEqual(MAX_SERVICE_FILE);
    expect(parseServiceFile(text, "dense.yaml").after.length).toBe((MAX_SERVICE_FILE - 32) / 2 + 1);
  });

  test("deep nests are refused with a clear error, never a stack overflow", () => {
    expect(
      thrown(() => parseServiceFile(`exec: x\nenv: ${"[".repeat(40)}${"]".repeat(40)}\n`, "d.yaml"))
        .message,
    ).toMatch(/nested more than 16/);
    expect(
      thrown(() =>
        parseServiceFile(`exec: x\nenv: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`, "d.yaml"),
      ).message,
    ).toMatch(/nested too deeply/);
  });

  test("duplicate keys are refused with file, line and the first line", () => {
    const e = thrown(() =>
      parseServiceFile("exec: /bin/true\noneshot: true\nexec: rm -rf /data\n", "dup.yaml"),
    );
    expect(e.code).toBe("duplicate-key");
    expect(e.where).toEqual({ file: "dup.yaml", line: 3, field: "exec" });
    expect(e.message).toMatch(/first at line 1/);
    expect(
      thrown(() => parseServiceFile("exec: x\nenv:\n  A: 1\n  A: 2\n", "d.yaml")).where,
    ).toMatchObject({ line: 4, field: "env.A" });
  });

  test("an unknown top-level field is ignored as zinit does, with a warning naming file, line and the known fields", () => {
    const warnings: string[] = [];
    const spec = parseServiceFile("exec: x\noneshoot: true\n", "u.yaml", (m) => warnings.push(m));
    expect(spec.oneshot).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^u\.yaml:2: oneshoot: unknown field, ignored as zinit does \(known: exec, test, oneshot/,
    );
  });

  test("service_create content with an unknown field is refused; unknown fields inside a section are refused", () => {
    const e = thrown(() => serviceFileText({ exec: "x", oneshoot: true }, "u.yaml"));
    expect(e.where).toMatchObject({ field: "oneshoot" });
    expect(e.message).toMatch(/unknown field \(known: exec, test, oneshot/);
    expect(
      thrown(() => parseServiceFile("exec: x\nsignal:\n  sotp: kill\n", "u.yaml")).message,
    ).toMatch(/known: stop/);
  });

  test("__proto__, constructor and prototype are refused, never dropped", () => {
    const after = thrown(() => parseServiceFile("exec: x\nafter: [__proto__]\n", "p.yaml"));
    expect(after.where).toMatchObject({ line: 2, field: "after.0" });
    expect(after.message).toMatch(/"__proto__" is a reserved name/);
    for (const k of ["__proto__", "constructor", "prototype"]) {
      const env = thrown(() => parseServiceFile(`exec: x\nenv:\n  A: 1\n  ${k}: x\n`, "p.yaml"));
      expect(env.where).toMatchObject({ line: 4, field: `env.${k}` });
      expect(env.code).toBe("reserved");
    }
    expect(thrown(() => parseServiceFile("exec: x\n__proto__: {exec: y}\n", "p.yaml")).code).toBe(
      "reserved",
    );
    expect(SERVICE_NAME_RE.test("__proto__")).toBe(false);
    expect(SERVICE_NAME_RE.test("constructor")).toBe(false);
    expect(SERVICE_NAME_RE.test("__proto__x")).toBe(true);
  });
});

describe("serviceFileText: what service_create writes", () => {
  test("valid content becomes YAML the loader reads back to the same spec", () => {
    const content = {
      exec: "sh -c 'echo a: b # c'",
      after: ["db"],
      env: { A: 1, B: "x y" },
      oneshot: true,
    };
    const text = serviceFileText(content, "c.yaml");
    expect(Bun.YAML.parse(text)).toEqual(content);
    expect(parseServiceFile(text, "c.yaml").exec).toBe(content.exec);
  });

  test("unknown deep keys are refused before anything is serialised", () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 100_000; i++) {
      const next = {};
      deep.k = next;
      deep = next;
    }
    expect(thrown(() => serviceFileText({ exec: "x", junk: root }, "c.yaml")).message).toMatch(
      /nested more than 16/,
    );
    expect(thrown(() => serviceFileText({ exec: "x", junk: 1 }, "c.yaml")).message).toMatch(
      /unknown field/,
    );
  });

  test("content bigger than a service file may be is refused", () => {
    const env = Object.fromEntries(
      Array.from({ length: 15 }, (_, i) => [`V${i}`, "y".repeat(60_000)]),
    );
    const e = thrown(() => serviceFileText({ exec: "x", env }, "c.yaml"));
    expect(e.code).toBe("size");
    expect(e.message).toMatch(/larger than a service file may be/);
    // Just under the expanded budget but over the file limit once written: still refused.
    const env2 = Object.fromEntries(
      Array.from({ length: 5 }, (_, i) => [`V${i}`, "y".repeat(60_000)]),
    );
    expect(thrown(() => serviceFileText({ exec: "x", env: env2 }, "c.yaml")).message).toMatch(
      /would be \d+ bytes \(limit 262144\)/,
    );
  });
});

describe("hero-init extras: notify and every", () => {
  const parse = (text: string) => parseServiceFile(text, "x.yaml");
  const fails = (text: string): HeroError => {
    try {
      parse(text);
    } catch (e) {
      if (isHeroError(e, "input")) return e;
      throw e;
    }
    throw new Error("parsed but should not have");
  };
  test("everySeconds: seconds or a number with a unit", () => {
    expect(everySeconds(60)).toBe(60);
    expect(everySeconds("90s")).toBe(90);
    expect(everySeconds("5m")).toBe(300);
    expect(everySeconds("2h")).toBe(7200);
    expect(everySeconds("1d")).toBe(86400);
    expect(everySeconds("5 min")).toBeNull();
    expect(everySeconds("-5m")).toBeNull();
    expect(everySeconds(Number.NaN)).toBeNull();
  });
  test("a periodic oneshot and a notify service parse; absent fields stay absent", () => {
    expect(parse("exec: backup\noneshot: true\nevery: 10m\n").every).toBe(600);
    expect(parse("exec: d\nnotify: true\n").notify).toBe(true);
    const plain = parse("exec: d\n");
    expect("every" in plain || "notify" in plain).toBe(false);
  });
  test("every: bounded, and only on a oneshot", () => {
    const e = fails("exec: d\nevery: 60\n");
    expect(e.where).toMatchObject({ field: "every", line: 2 });
    expect(e.message).toMatch(/oneshot: true/);
    for (const bad of ["0", "5 min", "32d", "true"])
      expect(fails(`exec: d\noneshot: true\nevery: ${bad}\n`).where.field).toBe("every");
    expect(fails("exec: d\nnotify: yes-please\n").where.field).toBe("notify");
  });
});
