import { describe, expect, test } from "bun:test";
import { isHeroError } from "../lib/errors.ts";
import { jobCopy, jobVmConfig } from "./job-plan.ts";

const now = new Date("2027-01-01T00:00:00Z");
const thrown = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
};

describe("job VM config", () => {
  test("adds eth0 on QEMU's user network and the agent's forward, keeps the rest", () => {
    const vm = jobVmConfig({ hostname: "j1", job: { command: ["true"] } }, now);
    expect(vm.hostname).toBe("j1");
    expect(vm.network?.interfaces).toEqual([
      { name: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2" },
    ]);
    expect(vm.agent).toMatchObject({ listen: ["0.0.0.0"], allow: ["10.0.2.2/32"] });
    expect(vm.modules).toEqual(["virtio_pci", "virtio_net"]);
    // The caller's network is not replaced.
    const own = jobVmConfig(
      {
        job: { command: ["true"] },
        network: { interfaces: [{ name: "eth0", address: "192.0.2.5/24" }] },
      },
      now,
    );
    expect(own.network?.interfaces?.[0]?.address).toBe("192.0.2.5/24");
  });

  test("no [job], an invalid [job]: input errors (exit 3), before anything is built", () => {
    expect(
      isHeroError(
        thrown(() => jobVmConfig({ hostname: "x" }, now)),
        "input",
      ),
    ).toBe(true);
    const bad = thrown(() => jobVmConfig({ job: { command: [] } }, now));
    expect(isHeroError(bad, "input")).toBe(true);
    expect(String(bad)).toMatch(/job\.command/);
  });

  test("a token past its expiry or beyond the cap is a job-token error (exit 1)", () => {
    const at = (iso: string, cap?: number) => () =>
      jobVmConfig({ job: { command: ["true"], expires: iso } }, now, cap);
    expect(at("2027-01-01T00:59:00Z")()).toBeDefined();
    expect(isHeroError(thrown(at("2027-01-01T01:00:01Z")), "input.job-token")).toBe(true);
    expect(String(thrown(at("2027-01-01T01:00:01Z")))).toMatch(/more than 60 min away/);
    expect(isHeroError(thrown(at("2026-12-31T23:00:00Z")), "input.job-token")).toBe(true);
    expect(String(thrown(at("2027-01-01T00:20:00Z", 600_000)))).toMatch(/more than 10 min/);
  });

  test("copies get distinct names, and distinct runner names when they register", () => {
    const vm = {
      job: {
        command: ["true"],
        secret_file: "/etc/hero-init/job.secret",
        registration: { url: "http://h/ci", runner_name: "r" },
      },
    };
    expect(jobCopy("j", vm, 1, 1)).toEqual({ name: "j", vm });
    const c = jobCopy("j", vm, 2, 3);
    expect(c.name).toBe("j-2");
    expect(c.vm.job?.registration?.runner_name).toBe("r-2");
    expect(vm.job.registration.runner_name).toBe("r");
  });
});
