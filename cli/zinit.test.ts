import { describe, expect, test } from "bun:test";
import { renderStatus, yamlMap, yamlScalar } from "./zinit.ts";

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
