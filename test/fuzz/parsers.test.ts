/**
 * Fuzzing the parsers every outside input goes through: each must either
 * succeed or fail with its own clear error type — never crash with a
 * TypeError or hang. Seeded and bounded, so runs are repeatable.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { applyCmdlineOverrides, cmdlineParams, parseIpParam } from "../../guest/boot/cmdline.ts";
import { handleJsonRpc } from "../../guest/control/jsonrpc.ts";
import { handleLegacy } from "../../guest/control/legacy.ts";
import { type ControlApi, controlError } from "../../guest/control/protocol.ts";
import { parseHandoff } from "../../guest/pid1/reexec.ts";
import { createRing } from "../../guest/supervisor/logs.ts";
import { shellSplit } from "../../guest/supervisor/shlex.ts";
import { readConcatenated, readNewc, writeNewc } from "../../host/cpio/newc.ts";
import { isHeroError } from "../../lib/errors.ts";
import { parseManifest } from "../../lib/manifest.ts";
import {
  parseServiceFile,
  parseServiceYaml,
  SERVICE_BOUNDS,
  serviceFileText,
} from "../../lib/service-spec.ts";
import { parseToml } from "../../lib/toml.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { findDuplicateKey } from "../../lib/yaml.ts";
import { parseNodeUpdateConfig } from "../../update/install.ts";
import { rng } from "./rng.ts";

const ROUNDS = 2000;
const VM_TOML = `hostname = "web-1"\nmodules = ["virtio_net"]\n[network]\ndns = ["1.1.1.1"]\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.0.5/24"\ngateway = "10.0.0.1"\n[ui]\nport = 9999\nallow = ["10.0.0.0/24"]\n[mycelium]\npeers = ["tcp://192.0.2.1:9651"]\n[job]\nservice = "x"\n`;
const CORPUS = join(import.meta.dir, "../fixtures/zinit/valid");
const YAMLS = readdirSync(CORPUS).map((f) => readFileSync(join(CORPUS, f), "utf8"));

describe("fuzz", () => {
  test("vm.toml: parseVmConfig never throws and always returns a valid config", () => {
    const r = rng(1);
    for (let i = 0; i < ROUNDS; i++) {
      const text = r.mutate(VM_TOML);
      const { config, errors } = parseVmConfig(text, "vm.toml");
      expect(typeof config.hostname).toBe("string");
      for (const e of errors) expect(isHeroError(e, "input")).toBe(true);
    }
  });

  test("service files: only input errors", () => {
    const r = rng(2);
    for (let i = 0; i < ROUNDS; i++) {
      const text = r.mutate(r.pick(YAMLS));
      try {
        parseServiceFile(text, "f.yaml");
      } catch (e) {
        if (!isHeroError(e, "input"))
          throw new Error(`seed 2 round ${i}: ${String(e)}\n${JSON.stringify(text)}`);
      }
    }
  });

  test("manifests: only input errors", () => {
    const r = rng(3);
    const m = `version = 3\n[[vm.binaries]]\nname = "tool"\nversion = "1.0.0"\nurl = "https://example.org/tool"\nsha256 = "${"a".repeat(64)}"\nsize = 10\n`;
    for (let i = 0; i < ROUNDS; i++) {
      try {
        parseManifest(r.mutate(m), "m.toml");
      } catch (e) {
        if (!isHeroError(e, "input")) throw new Error(`seed 3 round ${i}: ${String(e)}`);
      }
    }
  });

  test("manifests with environments, expiry and rollout, and the update configs: only input errors", () => {
    const r = rng(31);
    const m = `version = 3\nexpires = 2027-01-01T00:00:00Z\n[[vm.binaries]]\nname = "tool"\nversion = "1.0.0"\nurl = "https://example.org/tool"\nsha256 = "${"a".repeat(64)}"\nsize = 10\nservices = ["tool"]\nrollout = 50\n[[env.canary.vm.binaries]]\nname = "tool"\nversion = "1.1.0"\nurl = "https://example.org/tool2"\nsha256 = "${"b".repeat(64)}"\nsize = 11\n`;
    const u = `manifest = "http://192.0.2.1/b.toml"\nkey = "RW${"A".repeat(54)}"\nrole = "node"\nenv = "canary"\ninterval = 600\n`;
    const vm = `${VM_TOML.replace('[job]\nservice = "x"\n', "")}[update]\nmanifest = "http://192.0.2.1/b.toml"\nkey = "RW${"A".repeat(54)}"\ninterval = 60\n[agent]\nallow = ["10.0.0.0/8"]\n[job]\nexpires = 2027-01-01T00:00:00Z\nsecret_file = "/etc/s"\n[job.runner]\nurl = "http://192.0.2.1/r"\nsha256 = "${"c".repeat(64)}"\nsize = 5\n`;
    for (let i = 0; i < ROUNDS; i++) {
      for (const [text, parse] of [
        [m, (t: string) => parseManifest(t, "m.toml")],
        [u, (t: string) => parseNodeUpdateConfig(t, "u.toml")],
      ] as const) {
        try {
          parse(r.mutate(text));
        } catch (e) {
          if (!isHeroError(e, "input")) throw new Error(`seed 31 round ${i}: ${String(e)}`);
        }
      }
      const { errors } = parseVmConfig(r.mutate(vm), "vm.toml");
      for (const e of errors) expect(isHeroError(e, "input")).toBe(true);
    }
    // The unmutated documents are valid.
    expect(parseManifest(m, "m.toml").env.canary?.vm?.binaries[0]?.version).toBe("1.1.0");
    expect(parseVmConfig(vm, "vm.toml").errors).toEqual([]);
  });

  test("the self-update hand-off: only input errors with a message, never another error", () => {
    const r = rng(32);
    const good = JSON.stringify({
      schema: 1,
      from: "/usr/lib/hero/hero-init",
      to: "/usr/lib/hero/pkgs/hero-init/2/hero-init",
      version: "2",
      direction: "forward",
      at: 1,
      services: [{ name: "a", pid: 12, startedAt: 1, restarts: 0, stdoutFd: 20, stderrFd: 21 }],
    });
    expect(parseHandoff(good).services[0]?.pid).toBe(12);
    for (let i = 0; i < ROUNDS; i++) {
      try {
        parseHandoff(r.mutate(good));
      } catch (e) {
        // A TypeError or RangeError here would be a crash of the resume path, not a refusal.
        if (!isHeroError(e, "input") || !e.message)
          throw new Error(`seed 32 round ${i}: ${String(e)}`);
      }
    }
  });

  test("cpio reader: only cpio errors on mutated and random archives", () => {
    const r = rng(4);
    const good = writeNewc([
      { type: "dir", path: "a", mode: 0o755 },
      { type: "file", path: "a/b", mode: 0o644, data: new TextEncoder().encode("hello world") },
      { type: "symlink", path: "c", target: "a/b" },
    ]);
    for (let i = 0; i < ROUNDS; i++) {
      const bytes = i % 4 === 0 ? r.bytes(r.int(600)) : good.slice();
      for (let k = 0; k < 1 + r.int(8); k++) bytes[r.int(bytes.length)] = r.int(256);
      for (const parse of [() => readNewc(bytes), () => readConcatenated(bytes)]) {
        try {
          parse();
        } catch (e) {
          if (!isHeroError(e, "cpio")) throw new Error(`seed 4 round ${i}: ${String(e)}`);
        }
      }
    }
  });

  test("kernel command line and exec lines: never crash", () => {
    const r = rng(5);
    for (let i = 0; i < ROUNDS; i++) {
      const line = r.mutate(
        "console=ttyS0 hero.hostname=x ip=10.0.2.15::10.0.2.2:255.255.255.0:h:eth0:off hero.modules=a,b quiet",
      );
      const params = cmdlineParams(line);
      applyCmdlineOverrides({}, params);
      parseIpParam(params.get("ip") ?? "");
      try {
        shellSplit(line);
      } catch (e) {
        expect((e as Error).message).toMatch(/unterminated|trailing backslash/);
      }
    }
  });

  test("control protocols: every line gets a well-formed answer, never an exception", async () => {
    const r = rng(6);
    const fail = () => {
      throw controlError(-32000, "service not found");
    };
    const api: ControlApi = {
      list: () => ({ a: "Running" }),
      status: fail,
      start: fail,
      stop: fail,
      restart: async () => fail(),
      monitor: fail,
      forget: fail,
      kill: fail,
      shutdown: () => {},
      reboot: () => {},
      create: fail,
      remove: fail,
      get: fail,
      stats: fail,
      logs: () => [],
      logRing: createRing(10),
    };
    const seeds = [
      '{"jsonrpc":"2.0","id":1,"method":"service_status","params":["a"]}',
      '[{"jsonrpc":"2.0","id":1,"method":"service_list"}]',
      "status a",
      "kill a SIGTERM",
      "log snapshot",
    ];
    for (let i = 0; i < ROUNDS; i++) {
      const line = r.mutate(r.pick(seeds));
      const first = line.trimStart()[0];
      const reply =
        first === "{" || first === "["
          ? await handleJsonRpc(api, line, () => ({}))
          : await handleLegacy(api, line);
      if (reply === null) continue; // a notification gets no answer
      for (const l of reply.text.split("\n").filter(Boolean))
        expect(() => JSON.parse(l)).not.toThrow();
    }
  });
});

describe("fuzz: the HTTP app", () => {
  test("random methods, paths, headers and bodies: never a crash, no 5xx", async () => {
    const { createApp } = await import("../../guest/ui/app.ts");
    const { fakeSource } = await import("../helpers/fake-ui-source.ts");
    const open = createApp({
      hostname: () => "h",
      uptime: () => 1,
      allow: [],
      source: fakeSource().source,
    });
    const locked = createApp({
      hostname: () => "h",
      uptime: () => 1,
      allow: [],
      source: fakeSource().source,
      passwordHash: await Bun.password.hash("pw", {
        algorithm: "argon2id",
        memoryCost: 1024,
        timeCost: 1,
      }),
    });
    const r = rng(7);
    const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    const ips = ["127.0.0.1", "::1", "4ab::1", "10.0.0.1", "garbage", ""];
    for (let i = 0; i < 2000; i++) {
      const path =
        `/${r.mutate(r.pick(["health", "api/v1/services", "api/v1/services/web/restart", "services/web", "api/v1/logs?after=3", "login", "api/v1/login", "terminal/ws", "updates/apply", "x/../../etc/passwd", "%00", "health?x=1"]))}`.replace(
          /[\s#]/g,
          "",
        );
      let url: string;
      try {
        url = new URL(path, "http://h").toString();
      } catch {
        continue;
      }
      const method = r.pick(methods);
      const app = i % 2 ? open : locked;
      const res = await app.request(
        url,
        {
          method,
          headers: {
            "x-junk": String(r.int(1e9)),
            "content-type": r.pick([
              "application/json",
              "application/x-www-form-urlencoded",
              "text/plain",
            ]),
            cookie: r.mutate("session=abc").replace(/[\r\n\0]/g, ""),
          },
          body: method === "GET" || method === "HEAD" ? undefined : r.bytes(r.int(200)),
        },
        { requestIP: () => ({ address: r.pick(ips) }) },
      );
      expect(res.status).toBeLessThan(500);
      await res.body?.cancel(); // SSE answers stay open otherwise
    }
  });
});

describe("fuzz: YAML and TOML from outside stay bounded", () => {
  test("service files with alias bombs of random shape: refused, or small once expanded", () => {
    const r = rng(41);
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const levels = 1 + r.int(8);
      const fan = 1 + r.int(12);
      const leaf = `"${"x".repeat(1 + r.int(60_000))}"`;
      const lines = [`exec: /bin/true`, `env:`, `  L0: &l0 ${leaf}`];
      for (let l = 1; l <= levels; l++) {
        const refs = Array.from({ length: fan }, () => `*l${r.int(l)}`).join(", ");
        lines.push(
          `  L${l}: &l${l} ${
            r.int(2)
              ? `[${refs}]`
              : `{${refs
                  .split(", ")
                  .map((a, k) => `k${k}: ${a}`)
                  .join(", ")}}`
          }`,
        );
      }
      const text = `${lines.join("\n")}\n`;
      try {
        const value = parseServiceYaml(text, "bomb.yaml");
        // Accepted: what a reply or a re-serialisation would write is bounded.
        expect(JSON.stringify(value).length).toBeLessThan(4 * SERVICE_BOUNDS.maxCost);
      } catch (e) {
        if (!isHeroError(e, "input")) throw new Error(`seed 41 round ${i}: ${String(e)}`);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(50);
  });

  test("the duplicate-key scanner never throws or hangs on mutated service files", () => {
    const r = rng(42);
    for (let i = 0; i < ROUNDS; i++) {
      const text = r.mutate(r.pick(YAMLS) + r.pick(YAMLS));
      const res = findDuplicateKey(text);
      if (res !== null) expect(["duplicate", "unsupported"]).toContain(res.kind);
    }
    // Two corpus files one after the other repeat `exec:`: always found.
    expect(findDuplicateKey(`${YAMLS[0]}${YAMLS[1]}`)).toMatchObject({
      kind: "duplicate",
      key: "exec",
    });
  });

  test("service_create content: only input errors, and what would be written reads back", () => {
    const r = rng(44);
    const chars = [
      "a",
      "Z",
      "_",
      "-",
      ":",
      " ",
      "#",
      "'",
      '"',
      "\n",
      "\\",
      "[",
      "{",
      "&",
      "*",
      "?",
      "é",
      "\0",
      "1",
    ];
    const str = () => Array.from({ length: r.int(12) }, () => r.pick(chars)).join("");
    const value = (): unknown =>
      r.pick([str(), r.int(100), r.int(2) === 0, null, [str()], { [str()]: str() }]);
    let written = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const content: Record<string, unknown> = { exec: str() || "x" };
      if (r.int(2))
        content.env = Object.fromEntries(Array.from({ length: r.int(4) }, () => [str(), value()]));
      if (r.int(3) === 0) content.after = [str()];
      if (r.int(3) === 0) content[r.pick(["test", "dir", "log", "oneshot", "junk"])] = value();
      try {
        const text = serviceFileText(content, "c.yaml");
        expect(Bun.YAML.parse(text)).toEqual(content);
        parseServiceFile(text, "c.yaml");
        written++;
      } catch (e) {
        if (!isHeroError(e, "input")) throw new Error(`seed 44 round ${i}: ${String(e)}`);
      }
    }
    expect(written).toBeGreaterThan(200);
  });

  test("TOML with deep or wide nesting: only input errors", () => {
    const r = rng(43);
    for (let i = 0; i < 200; i++) {
      const depth = 1 + r.int(i % 10 === 0 ? 20_000 : 64);
      const [open, close] = r.pick([
        ["[", "]"],
        ["{a=", "}"],
      ] as const);
      const text = r.mutate(`[env]\nA = ${open.repeat(depth)}1${close.repeat(depth)}\n`, r.int(2));
      try {
        parseToml(text, "vm.toml");
      } catch (e) {
        if (!isHeroError(e, "input")) throw new Error(`seed 43 round ${i}: ${String(e)}`);
      }
    }
  });
});
