/**
 * Startup cost does not grow with features (issue 17): the modules PID 1
 * evaluates before READY, and those `hero-init list` / `zinit list`
 * evaluates, are named lists here. Method: the static import graph
 * (startup.ts), because a bundled binary evaluates every static import of
 * every module it reaches and nothing behind an `import()` until that runs;
 * it needs no binary and no timing, so it cannot flake. A module joining a
 * list fails with the import chain that pulled it in: make that import
 * lazy, or add the module here with the reason it is needed before READY.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compareLoaded, loadedModules, staticImports } from "./startup.ts";

const ROOT = join(import.meta.dir, "../..");
const read = (p: string): string | undefined => {
  const f = join(ROOT, p);
  return existsSync(f) ? readFileSync(f, "utf8") : undefined;
};

/**
 * PID 1 enters cli/main.ts, which imports cli/init-args.ts and then
 * guest/pid1/run.ts with `import()` (both run before READY, always).
 */
const PID1_ENTRIES = ["cli/main.ts", "cli/init-args.ts", "guest/pid1/run.ts"];

/** Each module PID 1 evaluates before READY, with why it must be there. */
const BEFORE_READY: Record<string, string> = {
  "cli/main.ts": "the entry: picks PID 1, init or the CLI",
  "cli/init-args.ts": "tells `init` (supervisor only) from PID 1's boot",
  "guest/pid1/run.ts": "PID 1 itself: guards, signals, boot, READY",
  "guest/pid1/acpi.ts": "the power button watcher, installed at boot",
  "guest/pid1/agent.ts": "binds the guest agent before READY (the host waits on it)",
  "guest/pid1/job-mode.ts": "job VMs: the job's service and exit, set up with the supervisor",
  "guest/pid1/job-runner.ts": "job-mode's constants and exit codes (its downloader is lazy)",
  "guest/pid1/reexec.ts": "a self-update's hand-off must be read before the supervisor starts",
  "guest/pid1/shutdown.ts": "the signal handlers' graceful shutdown",
  "guest/pid1/supervision.ts": "starts the supervisor and the control socket",
  "guest/pid1/updater.ts": "update_* control methods and the UI's update summary (engine lazy)",
  "guest/pid1/vsock.ts": "the agent's vsock listener, opened at boot",
  "guest/agent/ws-limits.ts":
    "the exec WebSocket's limits, given to Bun.serve at bind (the agent's code loads at its first request)",
  "guest/boot/index.ts": "the boot steps",
  "guest/boot/block.ts": "boot: finds virtio disks (config disk, volumes)",
  "guest/boot/cmdline.ts": "boot: kernel command line",
  "guest/boot/config.ts": "boot: reads vm.toml",
  "guest/boot/console.ts": "boot: the console",
  "guest/boot/devlinks.ts": "boot: /dev links",
  "guest/boot/hostname.ts": "boot: the hostname",
  "guest/boot/modules.ts": "boot: kernel modules",
  "guest/boot/mounts.ts": "boot: mounts",
  "guest/boot/network.ts": "boot: the network",
  "guest/boot/switchroot.ts": "boot: switch_root to a disk root",
  "guest/control/api.ts": "the control socket's API over the supervisor",
  "guest/control/connections.ts": "control socket: connections",
  "guest/control/errors.ts": "control socket: error replies",
  "guest/control/followers.ts": "control socket: log followers",
  "guest/control/framing.ts": "control socket: line framing",
  "guest/control/jsonrpc.ts": "control socket: JSON-RPC",
  "guest/control/legacy.ts": "control socket: zinit's legacy text protocol",
  "guest/control/methods.ts": "control socket: the method table",
  "guest/control/params.ts": "control socket: parameter checks",
  "guest/control/protocol.ts": "control socket: codes and errors",
  "guest/control/server.ts": "the control socket, answering before READY",
  "guest/control/stats.ts": "control socket: zinit stats (pure; reads /proc on call)",
  "guest/supervisor/backoff.ts": "supervisor: restart backoff",
  "guest/supervisor/cgroup.ts": "supervisor: one cgroup per service",
  "guest/supervisor/effects.ts": "supervisor: state machine effects",
  "guest/supervisor/gc-hint.ts": "supervisor: GC after bursts",
  "guest/supervisor/graph.ts": "supervisor: dependency order",
  "guest/supervisor/job.ts": "supervisor: the job's exit line",
  "guest/supervisor/load.ts": "supervisor: reads the service dir",
  "guest/supervisor/logs.ts": "supervisor: log rings",
  "guest/supervisor/notify.ts": "supervisor: readiness notifications",
  "guest/supervisor/pace.ts": "supervisor: start pacing",
  "guest/supervisor/process.ts": "supervisor: spawning and owned children",
  "guest/supervisor/reaper.ts": "PID 1 reaps orphans from the start",
  "guest/supervisor/service.ts": "supervisor: one service",
  "guest/supervisor/shlex.ts": "supervisor: exec lines",
  "guest/supervisor/state.ts": "supervisor: the state machine",
  "guest/supervisor/supervisor.ts": "the supervisor",
  "guest/supervisor/system.ts": "supervisor: system limits",
  "guest/ui/serve.ts": "binds :9999 before READY (the app itself loads on first request)",
  "guest/ui/source.ts": "installed binaries for the agent's status (guest/pid1/agent.ts)",
  "lib/atomic-file.ts": "reexec's hand-off and update state files",
  "lib/bounds.ts": "service-spec's limits",
  "lib/errors.ts": "errors everywhere",
  "lib/environments.ts": "vm-config's [update] env names (a leaf, not the manifest schema)",
  "lib/ext4-superblock.ts":
    "boot: block.ts's probe (the config disk and volumes are loaded only when there is a disk / [[volumes]])",
  "lib/identity.ts": "vm-config's [identity] schema (a leaf)",
  "lib/kernel-modules.ts": "boot: the module load order",
  "lib/layout.ts": "every guest path",
  "lib/log.ts": "the log",
  "lib/memo-load.ts": "the lazy loads' shared promise (UI, agent, mycelium admin; a few lines)",
  "lib/net-acl.ts": "the agent's client check at bind",
  "lib/peer-uri.ts": "vm-config's [mycelium] peer checks (a leaf: no keys, no BLAKE3)",
  "lib/random.ts": "temporary file names and the machine id without node:crypto",
  "lib/service-file.ts": "the control API writes service files",
  "lib/service-spec.ts": "service files are parsed at boot",
  "lib/toml.ts": "vm.toml is TOML",
  "lib/version.ts": "the version in logs and the agent's status",
  "lib/vm-config.ts": "vm.toml's schema",
  "lib/yaml.ts": "service files are YAML",
  "npm:@iarna/toml/parse-string.js":
    "vm.toml's parser (not the package's root: its stream parser loads node:stream)",
  "npm:ipaddr.js": "vm-config's address checks",
  "npm:valibot": "config and hand-off schemas",
  "node:fs": "files",
  "node:fs/promises": "files (async reads)",
  "node:os": "signal numbers and host facts",
  "node:path": "paths",
  "package.json": "lib/version.ts reads the version",
  "sys/ffi.ts": "system calls (reboot, mount, execve)",
  "sys/net.ts": "boot: network interfaces",
  "sys/splice.ts": "the agent's vsock splice",
  "update/sshd.ts": "updater.ts's sshd steps (pure, a few lines)",
  "update/state.ts": "updater.ts's machine id (the engine itself is lazy)",
};

/** `hero-init list` / `zinit list`: cli/main.ts → cli/index.ts → cli/zinit.ts, all it may load. */
const LIST_ENTRIES = ["cli/main.ts", "cli/index.ts", "cli/zinit.ts"];
const LIST: Record<string, string> = {
  "cli/main.ts": "the entry",
  "cli/index.ts": "the command tree",
  "cli/run.ts": "the command runner",
  "cli/zinit.ts": "the zinit commands",
  "cli/zinit-daemon.ts": "talks to the daemon",
  "guest/control/client.ts": "the control socket's client",
  "guest/control/errors.ts": "its error texts",
  "guest/control/framing.ts": "its line framing",
  "guest/control/protocol.ts": "its codes",
  "lib/errors.ts": "exit codes",
  "lib/layout.ts": "the control socket's path",
  "lib/version.ts": "--version",
  "package.json": "lib/version.ts reads the version",
  "npm:citty": "argument parsing",
  "node:fs": "the socket's existence check",
  "node:path": "argv[0]'s name",
  "node:util": "parseArgs for zinit's global options",
};

describe("the startup module sets", () => {
  test("the checker follows static imports only, and names the chain", () => {
    const files: Record<string, string> = {
      "a/main.ts": [
        'import { b } from "./b.ts";',
        'import type { T } from "../c/types.ts";',
        'export type { U } from "../c/u.ts";',
        'const lazy = () => import("../c/lazy.ts");',
        'import "./side.ts"; export { x } from "../c/x.ts";',
        'import { readFileSync } from "node:fs";',
      ].join("\n"),
      "a/b.ts":
        'import {\n  h,\n} from "hono";\nimport data from "./d.json" with { type: "json" };',
      "a/side.ts": "",
      "c/x.ts": 'import { y } from "./deep.ts";',
      "c/deep.ts": "",
      "a/d.json": "{}",
    };
    const loaded = loadedModules(["a/main.ts"], (p) => files[p]);
    expect([...loaded.keys()].sort()).toEqual(
      [
        "a/b.ts",
        "a/d.json",
        "a/main.ts",
        "a/side.ts",
        "c/deep.ts",
        "c/x.ts",
        "node:fs",
        "npm:hono",
      ].sort(),
    );
    expect(loaded.get("c/deep.ts")).toEqual(["a/main.ts", "c/x.ts", "c/deep.ts"]);
    expect(
      compareLoaded(
        loaded,
        [
          "a/main.ts",
          "a/b.ts",
          "a/d.json",
          "a/side.ts",
          "c/x.ts",
          "node:fs",
          "npm:hono",
          "gone.ts",
        ],
        "at start",
      ),
    ).toEqual([
      "c/deep.ts is now evaluated at start, pulled in by: a/main.ts → c/x.ts → c/deep.ts",
      "gone.ts is no longer evaluated at start: remove it from the list",
    ]);
    expect(() => loadedModules(["a/missing.ts"], (p) => files[p])).toThrow("a/missing.ts");
    expect(staticImports('export const a = "x";\nexport function f() {}')).toEqual([]);
  });

  test("PID 1 evaluates only the named modules before READY", () => {
    const loaded = loadedModules(PID1_ENTRIES, read);
    expect(loaded.size).toBeGreaterThan(20);
    expect(compareLoaded(loaded, Object.keys(BEFORE_READY), "by PID 1 before READY")).toEqual([]);
  });

  // The DHCP client (lib/dhcp*.ts, guest/boot/dhcp.ts, sys/dhcp-socket.ts) is imported by the network step only when an interface uses DHCP.
  test("PID 1 does not load the UI app, the update engine, the agent's code or DHCP at boot", () => {
    const loaded = [...loadedModules(PID1_ENTRIES, read).keys()];
    const early = loaded.filter((m) =>
      /^(guest\/ui\/(app|pages|assets|terminal|routes\/)|update\/(engine|apply|download|trust)|guest\/agent\/(app|files|exec-routes|files-routes|control-routes|server|exec|http|slots)|lib\/agent-protocol|guest\/mycelium\/|guest\/boot\/dhcp|lib\/dhcp|sys\/dhcp|host\/|npm:@xterm|npm:hono$)/.test(
        m,
      ),
    );
    expect(early).toEqual([]);
  });

  // The first /health after boot (deploy_vm waits on it) loads the UI's front only: the pages,
  // assets and routes load at the first other request (guest/pid1/run.ts, guest/ui/front.ts).
  test("the first /health adds only the UI's front to what PID 1 has loaded", () => {
    const boot = new Set(loadedModules(PID1_ENTRIES, read).keys());
    const added = [...loadedModules(["guest/ui/front.ts"], read).keys()].filter(
      (m) => !boot.has(m),
    );
    expect(added.sort()).toEqual(
      [
        "guest/ui/front.ts",
        "guest/ui/internal-error.ts",
        "guest/ui/middleware/headers.ts",
        "guest/ui/middleware/source-acl.ts",
        "guest/ui/routes/health.ts",
        "npm:hono",
        "npm:hono/factory",
      ].sort(),
    );
  });

  test("`hero-init list` / `zinit list` loads only the control socket's client", () => {
    const loaded = loadedModules(LIST_ENTRIES, read);
    expect(compareLoaded(loaded, Object.keys(LIST), "by `hero-init list`")).toEqual([]);
    expect(
      [...loaded.keys()].filter((m) => /^(host|update|sys)\/|^guest\/(?!control\/)/.test(m)),
    ).toEqual([]);
  });
});
