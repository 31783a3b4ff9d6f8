/**
 * `hero-init <command>`: the CLI of the multi-call binary. Invoked as
 * `zinit` it is the zinit CLI; the zinit commands also work as `hero-init
 * list` etc. Commands are loaded lazily; this returns an exit code.
 */
import { VERSION } from "../lib/version.ts";

const ZINIT_COMMANDS = new Set([
  "list",
  "status",
  "start",
  "stop",
  "restart",
  "monitor",
  "forget",
  "kill",
  "log",
  "shutdown",
  "reboot",
]);

const HELP = `hero-init ${VERSION} — PID 1 for VMs, zinit-compatible supervisor, host injector

usage: hero-init <command> [args]

service commands (same as zinit; also available by invoking the binary as 'zinit'):
  list | status S | start S | stop S | restart S | monitor S | forget S | kill S [SIG]
  log [-s] [FILTER] | shutdown | reboot          (options: -s SOCKET, --json)

host commands:
  inject --format dir|ext4|initramfs --rootfs PATH [--manifest F] [--vm-config F] [--services DIR]
         [--dry-run] [--json]             write hero-init and the VM's binaries/config into a rootfs
  template list | template build NAME --format dir|ext4|initramfs --out PATH
  deploy --template NAME|--rootfs PATH --out DIR [--format initramfs|ext4] [--manifest F] [--vm-config F]
  vm run DIR [--port 9999]                 boot a deployment in QEMU (Ctrl-C: power button)

mycelium (in the VM):
  mycelium status | peers | add-peer URI | remove-peer URI

manifest signing (minisign-compatible Ed25519):
  manifest keygen --out DIR | manifest sign FILE --key KEY | manifest verify FILE --pub PUB

  manifest build DIR --base-url URL --key KEY | manifest rotate --key OLD --new PUB --version N

bootstrap server and updates:
  serve DIR [--listen ADDR:PORT]            serve manifests and binaries (default [::]:8080)
  update [--check] [--json]                 in a VM: check or apply the signed manifest now
  update --config FILE [--every S]          on a node: run the update engine here
  install --manifest URL --key PUB [--env E]  set up a fresh node (idempotent)

guest agent (host side):
  agent [--addr URL | --vsock SOCK:PORT] [--token-file F] exec|cp|stat|shutdown|status|wait-exit

other commands:
  init [-c DIR] [-s SOCKET]... [-b LINES]   run the supervisor outside PID 1
  version                                   print the version

As PID 1 (started by the pre-init) it boots the VM; see docs/ARCHITECTURE.md.
`;

/** Runs a CLI command; returns the process exit code. */
export async function runCli(argv0: string, args: string[]): Promise<number> {
  if (argv0 === "zinit") {
    if (args[0] === "init") return (await import("./init-mode.ts")).runInitMode(args.slice(1));
    return (await import("./zinit.ts")).runZinit(args);
  }
  const [cmd, ...rest] = args;
  if (cmd && ZINIT_COMMANDS.has(cmd)) return (await import("./zinit.ts")).runZinit(args);
  if (cmd === "-s" || cmd === "--json") return (await import("./zinit.ts")).runZinit(args);
  switch (cmd) {
    case "init":
      return (await import("./init-mode.ts")).runInitMode(rest);
    case "inject":
      return (await import("./inject.ts")).runInject(rest);
    case "mycelium":
      return (await import("./mycelium.ts")).runMycelium(rest);
    case "manifest":
      return (await import("./manifest.ts")).runManifest(rest);
    case "serve":
      return (await import("./serve.ts")).runServe(rest);
    case "update":
      return (await import("./update.ts")).runUpdateCli(rest);
    case "install":
      return (await import("./update.ts")).runInstallCli(rest);
    case "agent":
      return (await import("./agent.ts")).runAgent(rest);
    case "deploy":
      return (await import("./host.ts")).runHost("deploy", rest);
    case "template":
    case "vm":
      return (await import("./host.ts")).runHost(`${cmd} ${rest[0] ?? ""}`, rest.slice(1));
    case "version":
    case "--version":
      console.log(VERSION);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return 0;
    default:
      console.error(`hero-init: unknown command "${cmd}" (try: hero-init help)`);
      return 2;
  }
}
