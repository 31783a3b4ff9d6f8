/**
 * runJob: one ephemeral job VM from config to exit record (docs/jobs.md).
 * deployVm builds the VM (minimal template, initramfs: the smallest boot),
 * QEMU boots it with its console in `<out>/console.log` and the agent's
 * port forwarded, and the host waits for the job's code: from the agent's
 * wait-exit when the agent answers, else from the HERO-EXIT line on the
 * console, so a guest whose agent never comes up still reports. A VM that
 * has not reported by the deadline is stopped step by step (the agent's
 * graceful shutdown, the ACPI power button, QMP quit, SIGKILL), and a VM
 * that ends without reporting is said to have done so. The exit record goes
 * to `<out>/exit.json` (0600); then the VM's writable disk, its secrets
 * and deployment.json (it holds the agent token) are removed unless `keep`.
 * runJobs runs several at once, each with its own directory, disk, ports
 * and record.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import type { VmConfigInput } from "../lib/vm-config.ts";
import { AgentClient } from "./agent-client.ts";
import { type Deployment, deployVm } from "./deploy.ts";
import { freePort } from "./free-port.ts";
import { jobVmConfig } from "./job-plan.ts";
import {
  CONSOLE_TAIL_BYTES,
  consoleTail,
  type ExitRecord,
  exitDetail,
  type HeroExit,
  nextStopStep,
  parseHeroExit,
  type StopStep,
  silentEnd,
} from "./job-record.ts";
import { ensureKernel, ensureVmlinux, type Kernel } from "./kernel.ts";
import { qemuArgs } from "./qemu-args.ts";
import { qmpCommand } from "./qmp.ts";

/** Inputs of {@link runJob}. */
export interface JobRunOptions {
  /** The job's name (the record's `name`). */
  name: string;
  /** The deployment directory: made; the record and console log stay there. */
  out: string;
  /** The VM's config; must have [job]. */
  vm: VmConfigInput;
  /** Template to build from (default "minimal"). */
  template?: string;
  services?: Record<string, string>;
  manifest?: string;
  /** The short-lived token, written 0600 to [job] secret_file. */
  jobSecret?: Uint8Array;
  kernel?: Kernel;
  /** Boot the uncompressed kernel through PVH (much faster under TCG). Default true. */
  vmlinux?: boolean;
  /** How long the VM may run (from QEMU's start) before the host stops it. */
  deadlineMs: number;
  /** Time each stop step gets before the next one. Default 30 s. */
  stepGraceMs?: number;
  /** Default 512. */
  memMB?: number;
  accel?: "tcg" | "kvm";
  /** Keep the disk and secrets (debugging). */
  keep?: boolean;
  /** The longest a token may live from now (default one hour). */
  expiryCapMs?: number;
  progress?: (msg: string) => void;
}

/** How long a VM that has reported gets to power off by itself before it is stopped. */
const POWEROFF_AFTER_REPORT_MS = 60_000;
/** The console window searched for HERO-EXIT (a flooding guest costs no more than this). */
const WINDOW_CHARS = 256 * 1024;
/** The console log kept after the run. */
const CONSOLE_KEEP_BYTES = 4 * 1024 * 1024;
const SETPRIV = Bun.which("setpriv");

type Qemu = ReturnType<typeof Bun.spawn>;
interface Started {
  proc: Qemu;
  pid: number;
  qmp: string;
  work: string;
  agentPort: number;
  stderr: () => string;
}

const running = (p: Qemu) => p.exitCode === null && p.signalCode === null;
/** Resolves true when QEMU has exited within `ms`. */
const exitedWithin = (p: Qemu, ms: number) =>
  Promise.race([p.exited.then(() => true), Bun.sleep(ms).then(() => !running(p))]);

/** Starts QEMU; resolves once QMP answers. A forwarded port taken meanwhile is retried with another. */
async function startQemu(
  kernelPath: string,
  d: Deployment,
  o: JobRunOptions,
  consoleFile: string,
): Promise<Started> {
  for (let attempt = 1; ; attempt++) {
    const work = mkdtempSync(join(tmpdir(), "hero-job-"));
    const qmp = join(work, "qmp.sock");
    const agentPort = await freePort();
    const argv = qemuArgs({
      vmlinuz: kernelPath,
      initrd: d.initrd,
      append: d.kernelCmdline,
      memMB: o.memMB ?? 512,
      forwards: { [agentPort]: 9998 },
      disks: d.disk ? [{ path: d.disk }] : [],
      accel: o.accel ?? "tcg",
      serial: { file: consoleFile },
      qmpSocket: qmp,
    });
    // Its own session (a Ctrl-C reaches only us, who stop it in order), and SIGKILLed if we die.
    const proc = Bun.spawn(SETPRIV ? [SETPRIV, "--pdeathsig", "KILL", ...argv] : argv, {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      detached: true,
    });
    let err = "";
    void (async () => {
      const dec = new TextDecoder();
      for await (const c of proc.stderr as ReadableStream<Uint8Array>)
        if (err.length < 8192) err += dec.decode(c, { stream: true });
    })().catch(() => {});
    const s: Started = { proc, pid: proc.pid, qmp, work, agentPort, stderr: () => err };
    // Started once the guest writes to its console or QMP answers (under load QMP can lag the boot).
    const end = Date.now() + 30_000;
    while (running(proc) && Date.now() < end) {
      if (statSync(consoleFile).size > 0) return s;
      const up = await Promise.race([
        qmpCommand(qmp, "query-status").then(
          () => true,
          () => false,
        ),
        Bun.sleep(2000).then(() => false),
      ]);
      if (up) return s;
      await exitedWithin(proc, 100);
    }
    if (running(proc) || (proc.exitCode === 0 && statSync(consoleFile).size > 0)) return s;
    await proc.exited;
    rmSync(work, { recursive: true, force: true });
    if (attempt < 3 && /hostfwd|host forwarding/i.test(err)) continue;
    throw new HeroError("job.qemu", `QEMU did not start: ${err.trim().slice(-500) || argv[0]}`);
  }
}

/** Reads the console file as it grows, keeping a bounded window of its end. */
class ConsoleWatch {
  window = "";
  private at = 0;
  private readonly dec = new TextDecoder();
  constructor(private readonly file: string) {}
  poll(): void {
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      return;
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= this.at) return;
      // Read at most the window's worth: a flood skips ahead instead of growing our memory.
      const from = Math.max(this.at, size - WINDOW_CHARS);
      const buf = Buffer.alloc(size - from);
      const n = readSync(fd, buf, 0, buf.length, from);
      this.at = from + n;
      const text = this.dec.decode(buf.subarray(0, n), { stream: true });
      this.window = (this.window + text).slice(-WINDOW_CHARS);
    } finally {
      closeSync(fd);
    }
  }
}

/** The agent's wait-exit, retried until it answers or `stop.done`; a guest's answer is checked. */
async function agentExit(c: AgentClient, stop: { done: boolean }): Promise<HeroExit | null> {
  while (!stop.done) {
    try {
      // The guest's answer: its types are a claim, checked here.
      const r: HeroExit | null = await c.waitExit(15_000);
      if (
        r &&
        Number.isInteger(r.code) &&
        r.code >= 0 &&
        r.code <= 255 &&
        typeof r.message === "string"
      )
        return { code: r.code, message: r.message.slice(0, 1024) };
    } catch {
      // not up yet, or going down: the console still tells
    }
    if (!stop.done) await Bun.sleep(1000);
  }
  return null;
}

/** The deadline's stop sequence; returns the steps taken. */
async function stopVm(
  s: Started,
  c: AgentClient,
  graceMs: number,
  say: (m: string) => void,
): Promise<string[]> {
  const steps: string[] = [];
  for (let step: StopStep | null = nextStopStep(null); step; step = nextStopStep(step)) {
    if (!running(s.proc)) break;
    steps.push(step);
    say(`stopping the VM: ${step}`);
    const act: Record<StopStep, () => Promise<unknown>> = {
      "agent-shutdown": () => c.shutdown("poweroff"),
      acpi: () => qmpCommand(s.qmp, "system_powerdown"),
      quit: () => qmpCommand(s.qmp, "quit"),
      kill: async () => s.proc.kill("SIGKILL"),
    };
    await Promise.race([act[step]().catch(() => {}), Bun.sleep(10_000)]);
    await exitedWithin(s.proc, step === "quit" ? 5000 : step === "kill" ? 60_000 : graceMs);
  }
  return steps;
}

/** Removes the VM's disk, boot image and secrets (only files inside `out`); trims the console log. */
function cleanUp(out: string, d: Deployment, consoleFile: string, keep: boolean): void {
  if (!keep)
    for (const p of [
      d.image,
      d.initrd,
      d.disk,
      d.uiPasswordFile,
      join(out, "mycelium.key"),
      join(out, "deployment.json"),
    ])
      if (p && resolve(p).startsWith(`${out}/`)) rmSync(p, { force: true, recursive: true });
  try {
    const size = statSync(consoleFile).size;
    if (size > CONSOLE_KEEP_BYTES) {
      const tail = readFileSync(consoleFile).subarray(size - CONSOLE_KEEP_BYTES);
      atomicWrite(consoleFile, tail, 0o600);
    }
  } catch {
    // no console at all
  }
}

/** Runs one job VM to its end; resolves with its exit record (also in `<out>/exit.json`). */
export async function runJob(o: JobRunOptions): Promise<ExitRecord> {
  const out = resolve(o.out);
  const startedAt = new Date();
  const say = (m: string) => o.progress?.(`job ${o.name}: ${m}`);
  const vm = jobVmConfig(o.vm, startedAt, o.expiryCapMs);
  const kernel = o.kernel ?? (await ensureKernel());
  const existed = existsSync(out);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  say("deploying");
  const d = await deployVm({
    template: o.template ?? "minimal",
    format: "initramfs",
    out,
    vm,
    services: o.services,
    manifest: o.manifest,
    jobSecret: o.jobSecret,
    kernel,
  }).catch((e: unknown) => {
    // A failed deploy leaves no half-built image or secret behind.
    if (!existed) rmSync(out, { recursive: true, force: true });
    else for (const f of ["ui-password", "mycelium.key"]) rmSync(join(out, f), { force: true });
    throw e;
  });
  const consoleFile = join(out, "console.log");
  writeFileSync(consoleFile, "", { mode: 0o600 });
  const secrets = [d.agentToken];
  if (o.jobSecret) secrets.push(new TextDecoder().decode(o.jobSecret).trim());
  if (d.uiPasswordFile) secrets.push(readFileSync(d.uiPasswordFile, "utf8").trim());
  let s: Started | null = null;
  try {
    const kernelPath = o.vmlinux === false ? kernel.vmlinuz : await ensureVmlinux(kernel);
    s = await startQemu(kernelPath, d, o, consoleFile);
    say(`booting (QEMU pid ${s.pid}, agent on 127.0.0.1:${s.agentPort})`);
    return await watchJob(o, out, s, d, consoleFile, secrets, startedAt, say);
  } finally {
    if (s) {
      if (running(s.proc)) s.proc.kill("SIGKILL");
      await s.proc.exited;
      rmSync(s.work, { recursive: true, force: true });
    }
    cleanUp(out, d, consoleFile, o.keep === true);
  }
}

/** From boot to the record: the report, the deadline, the end. */
async function watchJob(
  o: JobRunOptions,
  out: string,
  s: Started,
  d: Deployment,
  consoleFile: string,
  secrets: string[],
  startedAt: Date,
  say: (m: string) => void,
): Promise<ExitRecord> {
  const client = new AgentClient({ url: `http://127.0.0.1:${s.agentPort}`, token: d.agentToken });
  const stopAgent = { done: false };
  let fromAgent: HeroExit | null = null;
  const agentDone = agentExit(client, stopAgent).then((r) => {
    fromAgent = r;
  });
  const watch = new ConsoleWatch(consoleFile);
  // The deadline counts from the boot: building the image is not the job's time.
  const deadline = Date.now() + o.deadlineMs;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
  let fromConsole: HeroExit | null = null;
  let steps: string[] = [];
  let deadlinePassed = false;
  const graceMs = o.stepGraceMs ?? 30_000;
  try {
    while (running(s.proc) && !fromAgent && !fromConsole) {
      if (Date.now() >= deadline || interrupted) break;
      watch.poll();
      fromConsole = parseHeroExit(watch.window);
      await exitedWithin(s.proc, 250);
    }
    const reported = fromAgent !== null || fromConsole !== null;
    if (running(s.proc) && !reported) {
      deadlinePassed = true;
      say(interrupted ? "interrupted" : `deadline of ${o.deadlineMs / 1000} s passed`);
      steps = await stopVm(s, client, graceMs, say);
    } else if (running(s.proc) && !(await exitedWithin(s.proc, POWEROFF_AFTER_REPORT_MS))) {
      steps = await stopVm(s, client, graceMs, say);
    }
    await s.proc.exited;
  } finally {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(sig, onSignal);
    stopAgent.done = true;
    client.close();
  }
  await Promise.race([agentDone, Bun.sleep(2000)]);
  watch.poll();
  fromConsole = parseHeroExit(watch.window);
  const qemu = {
    pid: s.pid,
    code: s.proc.exitCode,
    signal: s.proc.signalCode ? String(s.proc.signalCode) : null,
  };
  const tail = consoleTail(watch.window, secrets, CONSOLE_TAIL_BYTES);
  const guest: HeroExit | null = fromAgent ?? fromConsole;
  const end: HeroExit =
    guest && !deadlinePassed ? guest : silentEnd(deadlinePassed, o.deadlineMs, qemu, tail);
  if (deadlinePassed && guest)
    end.message += `; the guest then said: code ${guest.code} (${guest.message})`;
  const endedAt = new Date();
  const record: ExitRecord = {
    version: 1,
    name: o.name,
    code: end.code,
    message: end.message,
    outcome: deadlinePassed ? "deadline" : guest ? "reported" : "no-report",
    source: deadlinePassed || !guest ? "host" : fromAgent ? "agent" : "console",
    ...exitDetail(guest && !deadlinePassed ? guest.message : ""),
    startedAt: startedAt.toISOString(),
    endedAt: endedAt.toISOString(),
    durationMs: endedAt.getTime() - startedAt.getTime(),
    deadlineMs: o.deadlineMs,
    stopSteps: steps,
    qemu,
    consoleTail: tail,
    kept: o.keep === true,
  };
  atomicWrite(join(out, "exit.json"), `${JSON.stringify(record, null, 2)}\n`, 0o600);
  say(`ended: code ${record.code} (${record.message})`);
  return record;
}

/**
 * Runs several job VMs, at most `parallel` at once; resolves with their
 * records in order (an Error for a job that could not be deployed or started).
 */
export async function runJobs(
  list: JobRunOptions[],
  parallel: number,
): Promise<(ExitRecord | Error)[]> {
  const records: (ExitRecord | Error)[] = new Array(list.length);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      records[i] = await runJob(list[i] as JobRunOptions).catch((e: unknown) =>
        e instanceof Error ? e : new Error(String(e)),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, list.length)) }, worker));
  return records;
}
