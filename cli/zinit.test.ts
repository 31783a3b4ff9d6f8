import { describe, expect, test } from "bun:test";
import { zinitArgs } from "./index.ts";
import { renderStats, renderStatus, yamlMap, yamlScalar } from "./zinit.ts";
import { legacyLine, lineOf } from "./zinit-daemon.ts";

describe("zinit YAML rendering (serde_yaml 0.8 + yaml-rust 0.4 rules)", () => {
  test("plain words stay bare; risky strings are double-quoted", () => {
    expect(yamlScalar("Running")).toBe("Running");
    expect(yamlScalar("redis-init")).toBe("redis-init");
    expect(yamlScalar("Error(Exited(Pid(4242), 1))")).toBe('"Error(Exited(Pid(4242), 1))"');
    expect(yamlScalar("a: b")).toBe('"a: b"');
    expect(yamlScalar("true")).toBe('"true"');
    expect(yamlScalar("42")).toBe('"42"');
    expect(yamlScalar("-x")).toBe('"-x"');
    expect(yamlScalar("")).toBe('""');
    expect(yamlScalar(' x"\n')).toBe('" x\\"\\n"');
  });

  test("list: document start, one line per service, final newline", () => {
    expect(yamlMap({ a: "Running", b: "Error(Exited(Pid(7), 3))" })).toBe(
      '---\na: Running\nb: "Error(Exited(Pid(7), 3))"\n',
    );
    expect(yamlMap({})).toBe("---\n{}\n");
  });

  test("status: zinit's field order, empty after as {}", () => {
    expect(renderStatus({ name: "web", pid: 12, state: "Running", target: "Up", after: {} })).toBe(
      "---\nname: web\npid: 12\nstate: Running\ntarget: Up\nafter: {}\n",
    );
    expect(
      renderStatus({ name: "w", pid: 0, state: "Blocked", target: "Up", after: { db: "Spawned" } }),
    ).toBe("---\nname: w\npid: 0\nstate: Blocked\ntarget: Up\nafter:\n  db: Spawned\n");
  });
});

describe("zinit 0.2.28's stats rendering", () => {
  test("fields in its order, floats with a fraction, children as a block sequence", () => {
    expect(
      renderStats({ name: "web", pid: 7, memory_usage: 4096, cpu_usage: 0, children: [] }),
    ).toBe("---\nname: web\npid: 7\nmemory_usage: 4096\ncpu_usage: 0.0\nchildren: []\n");
    expect(
      renderStats({
        name: "w",
        pid: 7,
        memory_usage: 1,
        cpu_usage: 12.5,
        children: [{ pid: 8, memory_usage: 2, cpu_usage: 3 }],
      }),
    ).toBe(
      "---\nname: w\npid: 7\nmemory_usage: 1\ncpu_usage: 12.5\nchildren:\n  - pid: 8\n    memory_usage: 2\n    cpu_usage: 3.0\n",
    );
  });
});

describe("talking to either zinit", () => {
  test("the legacy command of each JSON-RPC method zinit 0.2.14 has; none for the rest", () => {
    expect(legacyLine("service_list", [])).toBe("list");
    expect(legacyLine("service_status", ["web"])).toBe("status web");
    expect(legacyLine("service_kill", ["web", "SIGKILL"])).toBe("kill web SIGKILL");
    expect(legacyLine("system_reboot", [])).toBe("reboot");
    for (const m of [
      "service_stats",
      "service_restart",
      "stream_currentLogs",
      "system_start_http_server",
    ])
      expect(legacyLine(m, ["web"])).toBeNull();
  });

  test("a log line is a service's as zinit's clients filter it", () => {
    expect(lineOf("[+] web: hi", "web")).toBe(true);
    expect(lineOf("[-] web: err", "web")).toBe(true);
    expect(lineOf("[+] webx: hi", "web")).toBe(false);
    expect(lineOf("[+] other: web: hi", "web")).toBe(false);
  });

  test("-V before the command is --version; a -s value or what follows the command is left alone", () => {
    expect(zinitArgs(["-V"])).toEqual(["--version"]);
    expect(zinitArgs(["-s", "-V", "list"])).toEqual(["-s", "-V", "list"]);
    expect(zinitArgs(["-d", "-V"])).toEqual(["-d", "--version"]);
    expect(zinitArgs(["kill", "web", "-V"])).toEqual(["kill", "web", "-V"]);
  });
});
