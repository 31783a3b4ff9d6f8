/**
 * PID 1 updates itself in place (like systemd's daemon-reexec):
 *
 *  1. the update engine has staged the new hero-init in
 *     /usr/lib/hero/pkgs/hero-init/<version>/hero-init (sha256 checked);
 *  2. smoke test: the new binary runs `version` as an ordinary child and
 *     must answer; a binary that cannot do that is removed, nothing else
 *     happens;
 *  3. the supervisor's state (versioned schema: every service's pid, start
 *     time, restarts and the descriptors of its output pipes) is written to
 *     /run/hero-init/handoff.json, the pipes' close-on-exec flags are
 *     cleared, and the new binary is exec'ed (libc execve: Bun's process.execve
 *     closes every descriptor above 2) as the same PID 1 with
 *     `--resume FILE`: every service keeps running with the same pid;
 *  4. the new PID 1 adopts the services (the reaper collects their exits,
 *     including any that exited during the hand-off), serves again, and
 *     once healthy confirms: pkgs/hero-init/current and the boot path
 *     /usr/lib/hero/hero-init switch to the new binary (a hard link and a
 *     rename), old versions are removed;
 *  5. if resuming fails the new binary execs back into the old one with
 *     the same hand-off. If it crashes so hard the VM reboots, the boot path
 *     still names the old binary: it is only switched after confirmation.
 */

import {
  linkSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import * as v from "valibot";
import { atomicWrite, fsyncPath, switchLink } from "../../lib/atomic-file.ts";
import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import type { Change } from "../../lib/manifest.ts";
import { execve, setCloexec } from "../../sys/ffi.ts";
import { type AdoptedProcess, outputFds, spawnOwned } from "../supervisor/process.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";

export const RESUME_FLAG = "--resume";
/** The binary the pre-init execs at boot. */
export const BOOT_BINARY = LAYOUT.heroInit;

const Adopted = v.object({
  name: v.string(),
  pid: v.pipe(v.number(), v.integer(), v.minValue(0)),
  startedAt: v.number(),
  restarts: v.pipe(v.number(), v.integer(), v.minValue(0)),
  stdoutFd: v.optional(v.pipe(v.number(), v.integer(), v.minValue(3))),
  stderrFd: v.optional(v.pipe(v.number(), v.integer(), v.minValue(3))),
});

/** The hand-off between two hero-init binaries (schema 1). */
export const HandoffSchema = v.object({
  schema: v.literal(1),
  /** The binary that wrote it (exec back into it on failure). */
  from: v.string(),
  /** The binary being exec'ed, and its manifest version. */
  to: v.string(),
  version: v.string(),
  /** "forward": new binary resuming; "back": the old one after a failed resume. */
  direction: v.picklist(["forward", "back"]),
  reason: v.optional(v.string()),
  at: v.number(),
  services: v.array(Adopted),
});
export type Handoff = v.InferOutput<typeof HandoffSchema>;

/** Pure: parses a hand-off file; throws with the field that is wrong. */
export function parseHandoff(text: string): Handoff {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HeroError("handoff", `hand-off: not JSON: ${(e as Error).message}`);
  }
  const r = v.safeParse(HandoffSchema, raw);
  if (!r.success) {
    const i = r.issues[0];
    const field = (i.path ?? []).map((p) => String(p.key)).join(".") || "(root)";
    throw new HeroError("handoff", `hand-off: ${field}: ${i.message}`, { field });
  }
  return r.output;
}

/** The `--resume FILE` argument of this process, if any. */
export function resumeArg(argv = process.argv.slice(2)): string | null {
  const i = argv.indexOf(RESUME_FLAG);
  return i >= 0 ? (argv[i + 1] ?? null) : null;
}

/** The running services as adoptable processes (with their output pipes). */
export function snapshotServices(sup: Supervisor): Handoff["services"] {
  const out: Handoff["services"] = [];
  for (const name of sup.names()) {
    const s = sup.service(name);
    if (!s.child) {
      // A oneshot that succeeded stays done; anything else without a process starts afresh.
      if (s.spec.oneshot && s.state === "Success")
        out.push({ name, pid: 0, startedAt: s.startedAt ?? 0, restarts: s.restarts });
      continue;
    }
    const fds = outputFds.get(s.child.pid);
    out.push({
      name,
      pid: s.child.pid,
      startedAt: s.child.startedAt,
      restarts: s.restarts,
      ...(fds ? { stdoutFd: fds.stdout, stderrFd: fds.stderr } : {}),
    });
  }
  return out;
}

/**
 * Debug switch `hero.fault=handoff-exit` (kernel command line): SIGKILLs the
 * first running service of a forward hand-off right before execve, so a
 * test sees a child that exits during the hand-off reaped and restarted by
 * the new PID 1.
 */
function faultHandoffExit(h: Handoff): void {
  if (h.direction !== "forward") return;
  let cmdline = "";
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8");
  } catch {
    return;
  }
  if (!/(^|\s)hero\.fault=handoff-exit(\s|$)/.test(cmdline)) return;
  const victim = h.services.find((s) => s.pid > 0);
  if (!victim) return;
  log.warn(
    "reexec",
    `fault injection: SIGKILL ${victim.name} (pid ${victim.pid}) during the hand-off`,
  );
  try {
    process.kill(victim.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Debug switch `hero.fault=confirm-crash`: the new PID 1 exits right before
 * it would confirm a forward hand-off. The kernel panics ("Attempted to kill
 * init") and, with panic=-1, the VM reboots: a test sees that a binary that
 * never confirmed is not what boots next.
 */
function faultCrashBeforeConfirm(): void {
  let cmdline = "";
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8");
  } catch {
    return;
  }
  if (!/(^|\s)hero\.fault=confirm-crash(\s|$)/.test(cmdline)) return;
  log.error("reexec", "fault injection: PID 1 exits before confirming the self-update");
  // process.exit is refused in PID 1 (run.ts); reallyExit is the exit underneath it.
  (process as unknown as { reallyExit(code: number): never }).reallyExit(70);
}

/** Execs `target` as this PID 1 with the hand-off; returns only if execve failed (then throws). */
function execWithHandoff(target: string, h: Handoff): never {
  mkdirSync(dirname(LAYOUT.handoff), { recursive: true, mode: 0o700 });
  atomicWrite(LAYOUT.handoff, JSON.stringify(h), 0o600);
  const fds = h.services.flatMap((s) => [s.stdoutFd, s.stderrFd]).filter((x) => x !== undefined);
  for (const fd of fds) setCloexec(fd, false);
  log.info("reexec", `exec ${target} (${h.direction}) with ${h.services.length} services`);
  faultHandoffExit(h);
  try {
    execve(target, [target, RESUME_FLAG, LAYOUT.handoff], process.env);
  } catch (e) {
    for (const fd of fds) {
      try {
        setCloexec(fd, true);
      } catch {
        // closed meanwhile
      }
    }
    rmSync(LAYOUT.handoff, { force: true });
    throw e;
  }
}

/**
 * Runs `path version` as an ordinary child: a binary that cannot answer
 * never becomes PID 1 (nor systemd's unit); its version directory is
 * removed and the reason thrown.
 */
export async function smokeTest(path: string): Promise<void> {
  const p = spawnOwned([path, "version"], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const code = await p.exited;
  clearTimeout(timer);
  const out = `${await new Response(p.stdout as ReadableStream).text()}${await new Response(p.stderr as ReadableStream).text()}`;
  if (code !== 0 || !/\b\d+\.\d+\.\d+\b/.test(out)) {
    rmSync(dirname(path), { recursive: true, force: true });
    throw new Error(
      `new hero-init failed its smoke test (\`${basename(path)} version\` exited ${code ?? p.signalCode}: ${out.trim().slice(0, 200) || "no output"})`,
    );
  }
}

/**
 * Confirms a self-update: the boot path becomes `to` (hard link + rename,
 * on disk before anything else counts as confirmed), then `current`; the
 * other versions go. Shared by PID 1's resume and systemd's unit.
 */
export function confirmBootBinary(
  to: string,
  version: string,
  removeOtherVersions: (pkgs: string, name: string, keep: string) => void,
): void {
  const pkgDir = dirname(dirname(to));
  const tmp = `${BOOT_BINARY}.new`;
  rmSync(tmp, { force: true });
  linkSync(to, tmp);
  renameSync(tmp, BOOT_BINARY);
  fsyncPath(dirname(BOOT_BINARY));
  switchLink(join(pkgDir, "current"), version);
  removeOtherVersions(dirname(pkgDir), "hero-init", version);
}

/** The update engine's selfUpdate hook for PID 1. */
export function selfUpdateHook(sup: Supervisor) {
  return async (path: string, change: Change): Promise<void> => {
    await smokeTest(path);
    const from = readlinkSync("/proc/self/exe");
    if (from === path) return; // already running it (a resume that is being confirmed)
    execWithHandoff(path, {
      schema: 1,
      from,
      to: path,
      version: change.binary.version,
      direction: "forward",
      at: Date.now(),
      services: snapshotServices(sup),
    });
  };
}

/** Reads the hand-off of a resume (null when this is a normal boot). */
export function loadHandoff(): Handoff | null {
  const file = resumeArg();
  if (!file) return null;
  try {
    return parseHandoff(readFileSync(file, "utf8"));
  } catch (e) {
    log.error("reexec", `cannot read the hand-off ${file}: ${describeError(e)}`);
    return null;
  }
}

/** Adoption map for the supervisor. */
export function adoptionMap(h: Handoff): Map<string, AdoptedProcess> {
  return new Map(h.services.map((s) => [s.name, s]));
}

/** A resume failed: exec back into the other binary (forward → back); a failed "back" only logs. */
export function resumeFailed(h: Handoff, sup: Supervisor | null, err: unknown): void {
  log.error("reexec", `resume failed: ${describeError(err)}`);
  if (h.direction !== "forward") return;
  try {
    execWithHandoff(h.from, {
      ...h,
      to: h.from,
      from: h.to,
      direction: "back",
      reason: describeError(err),
      at: Date.now(),
      services: sup ? snapshotServices(sup) : h.services,
    });
  } catch (e) {
    log.error("reexec", `cannot exec back into ${h.from}: ${describeError(e)}`);
  }
}

/**
 * After a resume: confirm the new binary once it is healthy (forward), or
 * clean up after a failed one (back). Never throws.
 */
export function finishResume(h: Handoff, sup: Supervisor, healthyAfterMs = 5000): Promise<void> {
  rmSync(LAYOUT.handoff, { force: true });
  if (h.direction === "back") {
    log.error(
      "reexec",
      `self-update to hero-init ${h.version} rolled back: ${h.reason ?? "the new binary failed"}`,
    );
    rmSync(dirname(h.from), { recursive: true, force: true });
    try {
      rmdirSync(dirname(dirname(h.from))); // pkgs/hero-init, when nothing else is in it
    } catch {
      // not empty: an earlier version is installed there
    }
    // The update engine loads here, not at boot: only a resume after a self-update needs it.
    return import("../../update/engine.ts")
      .then((engine) => {
        engine.markBad(LAYOUT.updateState, "hero-init", h.version);
      })
      .catch((e) => log.warn("reexec", `cannot record the failed version: ${describeError(e)}`));
  }
  log.info("reexec", `resumed as hero-init ${h.version}: adopted ${h.services.length} services`);
  return new Promise<void>((done) =>
    setTimeout(async () => {
      try {
        // Loaded before anything is confirmed: failing to load it rolls back, as any failure here.
        const engine = await import("../../update/engine.ts");
        const lost = h.services.filter((s) => !sup.has(s.name));
        if (lost.length)
          throw new Error(`services lost in the hand-off: ${lost.map((s) => s.name).join(", ")}`);
        faultCrashBeforeConfirm();
        confirmBootBinary(h.to, h.version, engine.removeOtherVersions);
        log.info(
          "reexec",
          `self-update to hero-init ${h.version} confirmed; boots use it from now on`,
        );
      } catch (e) {
        resumeFailed(h, sup, e);
      }
      done();
    }, healthyAfterMs),
  );
}
