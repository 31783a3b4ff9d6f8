/**
 * The injection plan (pure): the manifest's config files join it like any
 * other file, with their own mode and owner, and every path is checked
 * again here whatever the caller already checked.
 */
import { describe, expect, test } from "bun:test";
import { isHeroError } from "../lib/errors.ts";
import { buildPlan, type PlanEntry, type PlanInputs, type PlannedConfigFile } from "./plan.ts";

const enc = new TextEncoder();
const base: PlanInputs = { heroInit: enc.encode("HERO"), preinit: enc.encode("PRE") };
const conf = (path: string, o: Partial<PlannedConfigFile> = {}): PlannedConfigFile => ({
  path,
  data: enc.encode("port = 80\n"),
  mode: 0o640,
  uid: 33,
  gid: 34,
  field: "vm.files.0",
  ...o,
});
const at = (plan: PlanEntry[], path: string) => plan.find((e) => e.path === path);

function refusal(i: PlanInputs): { field?: string; message: string } {
  try {
    buildPlan(i);
  } catch (e) {
    if (!isHeroError(e, "input")) throw e;
    return { field: e.where.field, message: e.message };
  }
  throw new Error("the plan was not refused");
}

describe("config files in the plan", () => {
  test("a config file is a file entry with its mode and owner; its new parents are plain directories", () => {
    const plan = buildPlan({ ...base, configFiles: [conf("/etc/web/web.conf")] });
    const f = at(plan, "/etc/web/web.conf");
    expect(f).toMatchObject({ kind: "file", mode: 0o640, uid: 33, gid: 34 });
    expect(f?.kind === "file" && f.sha256).toBe(
      new Bun.CryptoHasher("sha256").update("port = 80\n").digest("hex"),
    );
    // Not one of hero-init's own: an existing /etc/web keeps its mode.
    expect(at(plan, "/etc/web")).toMatchObject({ kind: "dir", mode: 0o755, own: false });
    // Parents come before children.
    const paths = plan.map((e) => e.path);
    expect(paths.indexOf("/etc/web")).toBeLessThan(paths.indexOf("/etc/web/web.conf"));
  });

  test("a path that climbs out is refused, naming the manifest field", () => {
    for (const p of ["/etc/../../host", "etc/app.conf", "/etc//app", "/etc/app/."]) {
      const r = refusal({ ...base, configFiles: [conf(p, { field: "env.dev.vm.files.2" })] });
      expect(r.field).toBe("env.dev.vm.files.2.path");
      expect(r.message).toContain("not a clean absolute path");
    }
  });

  test("what hero-init manages is refused (configPathProblem), naming the field", () => {
    for (const p of [
      "/etc/hero-init/vm.toml",
      "/usr/lib/hero/hero-init",
      "/sbin/init",
      "/etc/passwd",
    ]) {
      const r = refusal({ ...base, configFiles: [conf(p)] });
      expect(r.field).toBe("vm.files.0.path");
      expect(r.message).toContain("which config files may not change");
    }
  });

  test("a config file and a service file on the same path: refused as two writers", () => {
    const r = refusal({
      ...base,
      services: { web: "exec: web\n" },
      configFiles: [conf("/etc/zinit/web.yaml")],
    });
    expect(r.message).toBe("two entries write /etc/zinit/web.yaml");
  });
});
