/**
 * Boots and controls QEMU for the VM tests: TCG (KVM aborts on these
 * machines), the serial console captured to a log file that outlives the
 * run (so a failed CI job can be read afterwards), host ports forwarded to
 * guest ports over user networking, QMP for the power button and
 * ctrl-alt-del, and QEMU always ended (a stray QEMU keeps its forwarded port
 * and breaks the next test).
 *
 * The command line comes from host/qemu-args.ts, shared with
 * `hero-init vm run`: q35, `-accel tcg -cpu max,-erms`, `-nodefaults
 * -no-user-config -display none`, virtio-net-pci without its option ROM,
 * kernel args `console=ttyS0 panic=-1 loglevel=4` before the caller's, and
 * `-no-reboot` unless turned off. q35 vs pc was measured under TCG with a
 * busybox initramfs (QEMU start → init powers off): q35 6.3–6.8 s, pc
 * 6.4 s, qboot.rom instead of SeaBIOS no better: within noise, so q35 stays.
 * What does matter is the bzImage's XZ decompressor (~4 s under TCG): pass
 * `kernel: { vmlinuz: await ensureVmlinux(kernel) }` to boot the
 * uncompressed ELF through PVH instead (READY ~3 s instead of ~7 s).
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../host/free-port.ts";
import type { Kernel } from "../../host/kernel.ts";
import { qemuArgs } from "../../host/qemu-args.ts";
import { qmpCommand } from "../../host/qmp.ts";

/** Where console logs go: one file per VM, kept after the run. */
export const VM_LOGS = join(import.meta.dir, "../../.cache/vm-logs");

/** hero-init's READY line: PID 1 answers (UI, control socket); its services start after it. */
export const READY = /hero-init boot: READY/;
/**
 * The supervisor's line once every service file of /etc/zinit is loaded and its service started
 * (guest/supervisor/load.ts): wait for it before looking at a service that READY may precede.
 */
export const SERVICES_STARTED = /supervisor: \d+ service files in /;

/** How to boot. */
export interface BootOptions {
  /** A kernel from ensureKernel(), or any bzImage. */
  kernel: Kernel | { vmlinuz: string };
  initrd: string;
  /** Extra kernel arguments, after `console=ttyS0 panic=-1 loglevel=4`. */
  append?: string;
  /** Guest memory; default 1024 (a ~114 MB hero-init initramfs needs ≥ 512). */
  memMB?: number;
  /** Default 1. */
  cpus?: number;
  /** Guest TCP ports to forward; each gets a free 127.0.0.1 port (see Vm.ports). */
  hostfwd?: number[];
  /** virtio-blk disks (raw images), in order: vda, vdb, … */
  disks?: { path: string; readonly?: boolean; serial?: string }[];
  /** -no-reboot (default true): a guest reboot or panic ends QEMU, so tests see it. */
  noReboot?: boolean;
  /** Appended to QEMU's command line. */
  extraArgs?: string[];
  /** For the console log's file name. */
  name?: string;
  /** Run QEMU inside this network namespace (for tap devices the test made there). */
  netns?: string;
}

export { freePort };

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes start with ESC.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g;

/** Console text without ANSI escapes and carriage returns (the 8250 console sends \r\n). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "").replaceAll("\r", "");
}

/** QEMUs this module started and has not seen exit yet, killed when the test process exits. */
const live = new Set<Vm>();
process.on("exit", () => {
  for (const vm of live) vm.killSync();
});

// QEMU gets SIGKILL if the test process dies without running exit hooks
// (SIGINT to `bun test`, a CI timeout's SIGKILL): setpriv sets the parent
// death signal, which survives the exec into QEMU.
const SETPRIV = Bun.which("setpriv");

/** A running (or exited) QEMU. Create with bootVm(); end with kill() or `await using`. */
export class Vm {
  /** QEMU's pid. */
  readonly pid: number;
  /** guest port → host port (127.0.0.1). */
  readonly ports: Record<number, number>;
  /** The console log file (kept after kill). */
  readonly logFile: string;
  /** QEMU's argv, for error messages. */
  readonly argv: string[];
  readonly #proc: ReturnType<typeof Bun.spawn>;
  readonly #work: string;
  readonly #qmpPath: string;
  readonly #exited: Promise<number | null>;
  #raw = "";
  #clean = "";
  #readAt = 0;
  #decoder = new TextDecoder();
  #stderr = "";
  #done = false;

  /** @internal Use bootVm(). */
  constructor(
    proc: ReturnType<typeof Bun.spawn>,
    argv: string[],
    work: string,
    logFile: string,
    ports: Record<number, number>,
  ) {
    this.#proc = proc;
    this.pid = proc.pid;
    this.argv = argv;
    this.#work = work;
    this.#qmpPath = join(work, "qmp.sock");
    this.logFile = logFile;
    this.ports = ports;
    live.add(this);
    const stderrDone = this.#drainStderr().catch(() => {});
    this.#exited = proc.exited.then(async () => {
      live.delete(this);
      // Its last words (an error at start) arrive with the pipe's end; don't
      // wait forever in case something inherited the pipe.
      await Promise.race([stderrDone, Bun.sleep(1000)]);
      // null when QEMU was killed by a signal rather than exiting.
      return proc.exitCode;
    });
  }

  async #drainStderr(): Promise<void> {
    const dec = new TextDecoder();
    for await (const c of this.#proc.stderr as ReadableStream<Uint8Array>)
      this.#stderr += dec.decode(c, { stream: true });
  }

  /** Reads whatever QEMU appended to the log since the last call (incremental, UTF-8 safe). */
  #refresh(): void {
    let fd: number;
    try {
      fd = openSync(this.logFile, "r");
    } catch {
      return;
    }
    try {
      const buf = new Uint8Array(1 << 16);
      let appended = "";
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.#readAt);
        if (n <= 0) break;
        this.#readAt += n;
        appended += this.#decoder.decode(buf.subarray(0, n), { stream: true });
      }
      if (appended) {
        this.#raw += appended;
        // Re-cleaned whole: an escape split across two reads must not survive,
        // and consoles are small enough (≤ a few hundred KB) for this to be cheap.
        this.#clean = stripAnsi(this.#raw);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** All serial output so far, as QEMU wrote it (ANSI escapes and \r\n included). */
  console(): string {
    this.#refresh();
    return this.#raw;
  }

  /** All serial output so far without ANSI escapes and \r: what waitFor searches. */
  cleanConsole(): string {
    this.#refresh();
    return this.#clean;
  }

  /** QEMU's stderr so far. */
  stderr(): string {
    return this.#stderr;
  }

  /** QEMU's exit code once it has exited (null while running or if killed by a signal). */
  get exitCode(): number | null {
    return this.#proc.exitCode;
  }

  /** Whether QEMU is still running. */
  get running(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** The console tail and QEMU's stderr, for error messages. */
  diagnostics(): string {
    return (
      `--- console (last 3000 chars of ${this.logFile}) ---\n${this.cleanConsole().slice(-3000)}\n` +
      `--- qemu stderr ---\n${this.#stderr.slice(-1000)}`
    );
  }

  /**
   * Waits until the cleaned console (see cleanConsole) matches, searching
   * from index `from` (default 0, the start). Resolves with the match,
   * whose `index` is absolute, so `m.index + m[0].length` is the `from` of
   * a wait for the next occurrence. Rejects with the console tail when the
   * timeout passes or QEMU exits first.
   */
  async waitForMatch(
    pattern: RegExp | string,
    opts: { timeoutMs?: number; from?: number } = {},
  ): Promise<RegExpMatchArray> {
    const { timeoutMs = 120_000, from = 0 } = opts;
    const re =
      typeof pattern === "string"
        ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
    const end = Date.now() + timeoutMs;
    for (;;) {
      // Read the exit state before the console, so output written just
      // before QEMU exited is still searched once more.
      const exited = !this.running;
      this.#refresh();
      const text = this.#clean.slice(from);
      const m = re.exec(text);
      if (m) {
        m.index = (m.index ?? 0) + from;
        return m;
      }
      if (exited)
        throw new Error(
          `QEMU exited (code ${this.exitCode ?? this.#proc.signalCode}) before the console showed ${pattern}\n${this.diagnostics()}`,
        );
      if (Date.now() > end)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for the console to show ${pattern}\n${this.diagnostics()}`,
        );
      await Bun.sleep(50);
    }
  }

  /**
   * Waits until the console shows `pattern` and resolves with the matched
   * text (the whole match, not the groups: use waitForMatch for those).
   * Same search and errors as waitForMatch.
   */
  async waitFor(pattern: RegExp | string, timeoutMs = 120_000, from = 0): Promise<string> {
    return (await this.waitForMatch(pattern, { timeoutMs, from }))[0];
  }

  /** One QMP command (a fresh connection each time); resolves with its `return` value. */
  async qmp(command: string, args?: object): Promise<unknown> {
    try {
      return await qmpCommand(this.#qmpPath, command, args);
    } catch (e) {
      // `quit` may close the socket before its reply arrives; that is success.
      if (command === "quit" && String(e).includes("connection closed")) return {};
      throw e;
    }
  }

  /** Presses ctrl-alt-del on the PS/2 keyboard: the kernel sends SIGINT to PID 1. */
  async sendCtrlAltDel(): Promise<void> {
    await this.qmp("send-key", {
      keys: [
        { type: "qcode", data: "ctrl" },
        { type: "qcode", data: "alt" },
        { type: "qcode", data: "delete" },
      ],
    });
  }

  /** Presses the ACPI power button (needs the guest's `button` module to reach PID 1). */
  async powerdown(): Promise<void> {
    await this.qmp("system_powerdown");
  }

  /**
   * Resolves with QEMU's exit code once it exits by itself (null if a
   * signal ended it); rejects with the console tail after `timeoutMs`.
   * QEMU exits 0 on a guest power-off and, with -no-reboot, on a reboot.
   */
  async waitExit(timeoutMs = 60_000): Promise<number | null> {
    let timer: Timer | undefined;
    const timeout = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), timeoutMs);
    });
    try {
      const r = await Promise.race([this.#exited, timeout]);
      if (r === "timeout")
        throw new Error(`QEMU did not exit within ${timeoutMs} ms\n${this.diagnostics()}`);
      return r;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends QEMU (SIGTERM, then SIGKILL after 2 s) and removes its temp files;
   * the console log stays. Safe to call any number of times, also after
   * QEMU exited by itself.
   */
  async kill(): Promise<void> {
    if (this.running) {
      this.#proc.kill("SIGTERM");
      const gone = await Promise.race([this.#exited.then(() => true), Bun.sleep(2000)]);
      if (!gone) this.#proc.kill("SIGKILL");
      await this.#exited;
    }
    this.#cleanup();
  }

  /** kill() for `process.on("exit")`, where nothing async runs: SIGKILL at once. */
  killSync(): void {
    if (this.running) this.#proc.kill("SIGKILL");
    this.#cleanup();
  }

  #cleanup(): void {
    if (this.#done) return;
    this.#done = true;
    rmSync(this.#work, { recursive: true, force: true });
  }

  /** `await using vm = await bootVm(...)` kills QEMU when the scope ends, even on a failed expect. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

function logPath(name: string): string {
  mkdirSync(VM_LOGS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  for (let i = 0; ; i++) {
    const p = join(VM_LOGS, `${name}-${stamp}${i ? `-${i}` : ""}.log`);
    try {
      writeFileSync(p, "", { flag: "wx" });
      return p;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

/**
 * Starts QEMU and resolves once its QMP monitor answers, i.e. once QEMU has
 * set everything up (a bad argument or a taken port fails here, with QEMU's
 * own message, rather than as a console timeout later). A forwarded port
 * that another process grabbed between freePort() and QEMU's bind is
 * retried with fresh ports.
 */
export async function bootVm(opts: BootOptions): Promise<Vm> {
  for (let attempt = 1; ; attempt++) {
    const vm = await start(opts);
    try {
      await waitForQmp(vm);
      return vm;
    } catch (e) {
      await vm.kill();
      if (attempt < 3 && /hostfwd|host forwarding/i.test(vm.stderr())) continue;
      throw e;
    }
  }
}

async function start(o: BootOptions): Promise<Vm> {
  const work = mkdtempSync(join(tmpdir(), "hero-vm-"));
  const logFile = logPath(o.name ?? "vm");
  const ports: Record<number, number> = {};
  for (const g of o.hostfwd ?? []) ports[g] = await freePort();
  const forwards = Object.fromEntries(Object.entries(ports).map(([g, h]) => [h, Number(g)]));
  const argv = qemuArgs({
    vmlinuz: o.kernel.vmlinuz,
    initrd: o.initrd,
    append: o.append,
    memMB: o.memMB,
    cpus: o.cpus,
    forwards,
    disks: o.disks,
    noReboot: o.noReboot,
    serial: { file: logFile },
    qmpSocket: join(work, "qmp.sock"),
  });
  argv.push(...(o.extraArgs ?? []));
  const cmd = [...argv];
  if (o.netns) cmd.unshift("ip", "netns", "exec", o.netns);
  if (SETPRIV) cmd.unshift(SETPRIV, "--pdeathsig", "KILL");
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  return new Vm(proc, argv, work, logFile, ports);
}

async function waitForQmp(vm: Vm): Promise<void> {
  const end = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < end) {
    if (!vm.running) {
      await vm.waitExit(5_000).catch(() => null);
      throw new Error(
        `QEMU exited at start (code ${vm.exitCode}): ${vm.stderr().trim()}\n${vm.argv.join(" ")}`,
      );
    }
    try {
      await vm.qmp("query-status");
      return;
    } catch (e) {
      last = e; // the socket is not there yet
      await Bun.sleep(20);
    }
  }
  throw new Error(`QEMU's QMP socket did not answer within 30 s (${last})\n${vm.diagnostics()}`);
}
