/**
 * Boots and controls QEMU for the VM tests: TCG (KVM is not usable on these
 * machines), serial console captured to a log file, host ports forwarded to
 * guest ports over user networking, QMP for the power button and
 * ctrl-alt-del, and QEMU always killed at the end (a stray QEMU keeps its
 * forwarded port and breaks the next test).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qemuArgs } from "../../host-injector/qemu-args.ts";
import { qmpCommand } from "../../host-injector/qmp.ts";

const LOGS = join(import.meta.dir, "../../.cache/vm-logs");
const live = new Set<ReturnType<typeof Bun.spawn>>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/** How to boot. */
export interface BootOptions {
  kernel: { vmlinuz: string };
  initrd: string;
  /** Extra kernel arguments. */
  append?: string;
  memMB?: number;
  cpus?: number;
  /** Guest TCP ports to forward; each gets a free 127.0.0.1 port (see Vm.ports). */
  hostfwd?: number[];
  disks?: { path: string; readonly?: boolean }[];
  /** -no-reboot (default): a guest reboot ends QEMU, so tests see it. */
  noReboot?: boolean;
  extraArgs?: string[];
  /** For the console log's file name. */
  name?: string;
  /** Run QEMU inside this network namespace (for tap devices the test made there). */
  netns?: string;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() =>
        typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A running VM. */
export interface Vm {
  readonly pid: number;
  /** guest port → host port */
  readonly ports: Record<number, number>;
  /** Path of the console log. */
  readonly logFile: string;
  /** Serial console output so far. */
  console(): string;
  /** Waits until the console matches; rejects with the console tail on timeout or QEMU exit. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  qmp(command: string, args?: object): Promise<unknown>;
  /** ACPI power button (QEMU system_powerdown). */
  powerdown(): Promise<void>;
  sendCtrlAltDel(): Promise<void>;
  /** QEMU's exit code once it exits by itself (null on timeout). */
  waitExit(timeoutMs?: number): Promise<number | null>;
  kill(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Boots a VM. */
export async function bootVm(o: BootOptions): Promise<Vm> {
  mkdirSync(LOGS, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "hero-vm-"));
  const qmpPath = join(work, "qmp.sock");
  const logFile = join(LOGS, `${o.name ?? "vm"}-${Date.now()}.log`);
  writeFileSync(logFile, "");
  const ports: Record<number, number> = {};
  for (const g of o.hostfwd ?? []) ports[g] = await freePort();
  const forwards = Object.fromEntries(Object.entries(ports).map(([g, h]) => [h, Number(g)]));
  const args = qemuArgs({
    vmlinuz: o.kernel.vmlinuz,
    initrd: o.initrd,
    append: o.append,
    memMB: o.memMB,
    cpus: o.cpus,
    forwards,
    disks: o.disks,
    noReboot: o.noReboot,
    serial: { file: logFile },
    qmpSocket: qmpPath,
  });
  args.push(...(o.extraArgs ?? []));
  if (o.netns) args.unshift("ip", "netns", "exec", o.netns);
  const proc = Bun.spawn(args, { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  live.add(proc);
  let stderr = "";
  (async () => {
    for await (const c of proc.stderr as ReadableStream<Uint8Array>)
      stderr += new TextDecoder().decode(c);
  })();
  let exitCode: number | null = null;
  const exited = proc.exited.then((c) => {
    exitCode = c;
    live.delete(proc);
    return c;
  });

  const consoleText = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const tail = () =>
    `--- console (last 3000 chars) ---\n${consoleText().slice(-3000)}\n--- qemu stderr ---\n${stderr.slice(-1000)}`;

  const qmp = (command: string, a?: object) => qmpCommand(qmpPath, command, a);

  async function kill(): Promise<void> {
    if (exitCode === null) {
      proc.kill("SIGKILL");
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }

  return {
    pid: proc.pid,
    ports,
    logFile,
    console: consoleText,
    async waitFor(pattern, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const text = consoleText();
        const m =
          typeof pattern === "string"
            ? text.includes(pattern)
              ? pattern
              : null
            : pattern.exec(text)?.[0];
        if (m) return m;
        if (exitCode !== null)
          throw new Error(
            `QEMU exited (${exitCode}) before the console showed ${pattern}\n${tail()}`,
          );
        if (Date.now() > end)
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}\n${tail()}`);
        await Bun.sleep(100);
      }
    },
    qmp,
    async powerdown() {
      await qmp("system_powerdown");
    },
    async sendCtrlAltDel() {
      await qmp("send-key", {
        keys: [
          { type: "qcode", data: "ctrl" },
          { type: "qcode", data: "alt" },
          { type: "qcode", data: "delete" },
        ],
      });
    },
    async waitExit(timeoutMs = 60_000) {
      const r = await Promise.race([exited, Bun.sleep(timeoutMs).then(() => null)]);
      if (r === null) throw new Error(`QEMU did not exit within ${timeoutMs} ms\n${tail()}`);
      return r;
    },
    kill,
    [Symbol.asyncDispose]: kill,
  };
}
