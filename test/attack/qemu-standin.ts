/**
 * A stand-in for qemu-system-x86_64 (test only), for the Ctrl-C tests of
 * `hero-init vm run` (vm-run-ctrlc.test.ts): it takes QEMU's command line,
 * serves QMP on the `-qmp unix:PATH,…` socket, and behaves as QEMU does where
 * it matters:
 *
 *   SIGINT, SIGTERM, SIGHUP   "terminating on signal N", exit 0 (QEMU's
 *                             handler: the guest is killed, not shut down)
 *   QMP system_powerdown      the guest powers off: exit 0 a moment later
 *                             (STANDIN_NO_ACPI=1: a guest that ignores it)
 *   QMP quit                  exit 0 (STANDIN_NO_QUIT=1: hangs instead)
 *
 * Every event is appended to $STANDIN_LOG, one line each ("start <pid>
 * pgid=<pgid> sid=<sid>", "qmp system_powerdown", "signal SIGINT", "exit
 * poweroff"…), so the test reads what happened from the stand-in's side.
 */
import { appendFileSync, readFileSync, rmSync } from "node:fs";

const logFile = process.env.STANDIN_LOG ?? "/dev/null";
const note = (line: string) => appendFileSync(logFile, `${line}\n`);
const argv = process.argv.slice(2);
const qmpArg = argv[argv.indexOf("-qmp") + 1] ?? "";
const socket = /^unix:([^,]+)/.exec(qmpArg)?.[1];
if (!socket) {
  process.stderr.write("qemu-standin: no -qmp unix:PATH argument\n");
  process.exit(1);
}

// /proc/self/stat: pid (comm) state ppid pgrp session …
const stat = readFileSync("/proc/self/stat", "utf8");
const [, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
note(`start ${process.pid} pgid=${pgrp} sid=${session}`);

const end = (why: string) => {
  note(`exit ${why}`);
  process.exit(0);
};
for (const [sig, n] of [
  ["SIGINT", 2],
  ["SIGTERM", 15],
  ["SIGHUP", 1],
] as const) {
  process.on(sig, () => {
    note(`signal ${sig}`);
    process.stderr.write(`qemu-system-x86_64: terminating on signal ${n}\n`);
    end(`signal ${sig}`);
  });
}

rmSync(socket, { force: true });
Bun.listen({
  unix: socket,
  socket: {
    open(s) {
      s.write(`${JSON.stringify({ QMP: { version: {}, capabilities: [] } })}\n`);
    },
    data(s, d) {
      for (const line of d.toString().split("\n").filter(Boolean)) {
        const cmd = JSON.parse(line).execute as string;
        note(`qmp ${cmd}`);
        if (cmd === "qmp_capabilities") s.write('{"return": {}}\n');
        else if (cmd === "system_powerdown") {
          s.write('{"return": {}}\n');
          if (process.env.STANDIN_NO_ACPI !== "1") {
            process.stdout.write("standin guest: power button pressed, powering off\n");
            setTimeout(() => end("poweroff"), 300);
          }
        } else if (cmd === "quit") {
          if (process.env.STANDIN_NO_QUIT === "1") continue;
          s.write('{"return": {}}\n');
          setTimeout(() => end("quit"), 50);
        } else s.write(`{"error": {"class": "CommandNotFound", "desc": "${cmd}"}}\n`);
      }
    },
  },
});
process.stdout.write("standin guest: hero-init boot: READY\n");
setInterval(() => {}, 60_000);
