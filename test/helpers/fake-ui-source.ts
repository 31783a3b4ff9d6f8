/**
 * An in-memory UiSource for tests and fuzzing (never imported by the
 * binary): a real log ring, services as plain records, actions recorded.
 */
import { createRing } from "../../guest/supervisor/logs.ts";
import type { Action, ServiceDetail, UiSource } from "../../guest/ui/source.ts";

/** A fake source with services "web" and one named `<script>alert(1)</script>`. */
export function fakeSource() {
  const ring = createRing(100);
  const calls: [string, Action, string | undefined][] = [];
  const svc = (name: string, state = "Running"): ServiceDetail => ({
    name,
    state,
    target: "Up",
    pid: 42,
    uptimeMs: 5000,
    restarts: 1,
    oneshot: false,
    memoryBytes: 1 << 20,
    cpuUsec: 1500,
    reason: "",
    after: {},
    spec: { exec: `run ${name}` },
  });
  const services = new Map<string, ServiceDetail>([
    ["web", svc("web")],
    ["<script>alert(1)</script>", svc("<script>alert(1)</script>", "Error(<b>boom</b>)")],
  ]);
  const source: UiSource = {
    overview: () => ({
      hostname: "vm1",
      uptimeS: 61,
      load: [0.1, 0.2, 0.3],
      memory: { totalBytes: 1 << 30, availableBytes: 1 << 29 },
      disks: [],
      interfaces: [{ name: "mycelium", addresses: [{ address: "4ab:cd::1", mycelium: true }] }],
      versions: { heroInit: "test", binaries: [] },
      mycelium: null,
    }),
    services: () => [...services.values()],
    service: (n) => services.get(n) ?? null,
    logs: {
      since: (a, s, n) => ring.since(a, s).slice(0, n),
      subscribe: (fn) => ring.subscribe(fn),
    },
    async action(name, action, signal) {
      calls.push([name, action, signal]);
    },
    bootLog: () => ["[0.1] boot: <mounts>"],
    updates: () => ({ installed: [], manifest: null, lastCheck: null, available: false }),
  };
  return { source, ring, calls };
}
