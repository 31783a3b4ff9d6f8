/**
 * The command tree of the multi-call binary: `hero-init <command>`, and
 * invoked as `zinit`, zinit's CLI (its commands also work as `hero-init
 * list` etc.). Every command is a citty command, loaded only when named
 * (`zinit list` never loads host code); cli/run.ts walks the tree, prints
 * the generated usage for --help and returns the exit code.
 */
import { VERSION } from "../lib/version.ts";
import { type Command, printUsage, runTree } from "./run.ts";

/** zinit's commands (cli/zinit.ts), under both roots. */
const ZINIT_NAMES = [
  "list",
  "status",
  "start",
  "stop",
  "restart",
  "monitor",
  "forget",
  "kill",
  "stats",
  "log",
  "shutdown",
  "reboot",
  "proxy",
] as const;

const zinitCommands = Object.fromEntries(
  ZINIT_NAMES.map((n) => [
    n,
    () => import("./zinit.ts").then((m) => m.zinitCommands[n] as Command),
  ]),
);

/** Options before a zinit command (zinit's -s and -d, hero-init's --json), and --version. */
const ROOT_ARGS = {
  socket: {
    type: "string",
    alias: "s",
    valueHint: "path",
    description:
      "control socket of the zinit commands (default: $ZINIT_SOCKET, else the first existing)",
  },
  debug: { type: "boolean", alias: "d", description: "zinit's debug flag (accepted; no effect)" },
  json: { type: "boolean", description: "zinit commands: print results as JSON" },
  version: { type: "boolean", description: "print the version" },
} as const;

const init = () => import("./init-mode.ts").then((m) => m.init);

/** `help`: the root's usage (hidden; --help says the same). */
function help(root: () => Command, name: string): Command {
  return {
    meta: { name: "help", description: "this usage", hidden: true },
    run: () => printUsage(root(), [name]),
  };
}

const version: Command = {
  meta: { name: "version", description: "print the version" },
  run: () => {
    process.stdout.write(`${VERSION}\n`);
  },
};

/** `hero-init …`. */
export const heroInit: Command = {
  meta: {
    name: "hero-init",
    version: VERSION,
    description: "PID 1 for VMs, zinit-compatible supervisor, host injector",
    notes:
      "Invoked as 'zinit' it is zinit's CLI (the commands list … reboot).\nAs PID 1 (started by the pre-init) it boots the VM; see docs/ARCHITECTURE.md.",
  },
  args: ROOT_ARGS,
  subCommands: {
    ...zinitCommands,
    init,
    inject: () => import("./inject.ts").then((m) => m.inject),
    template: () => import("./host.ts").then((m) => m.template),
    deploy: () => import("./host.ts").then((m) => m.deploy),
    vm: () => import("./host.ts").then((m) => m.vm),
    job: () => import("./job.ts").then((m) => m.job),
    mycelium: () => import("./mycelium.ts").then((m) => m.mycelium),
    manifest: () => import("./manifest.ts").then((m) => m.manifest),
    serve: () => import("./serve.ts").then((m) => m.serve),
    update: () => import("./update.ts").then((m) => m.update),
    install: () => import("./update.ts").then((m) => m.install),
    node: () => import("./update.ts").then((m) => m.node),
    agent: () => import("./agent.ts").then((m) => m.agent),
    unit: () => import("./unit.ts").then((m) => m.unit),
    // Without a service: identity, manifest, managed users; with one: zinit's status.
    status: () => import("./status.ts").then((m) => m.status),
    version,
    help: help(() => heroInit, "hero-init"),
  },
  run: () => printUsage(heroInit, ["hero-init"]),
};

/**
 * `zinit …` (argv[0] "zinit"): zinit's commands, and `zinit init` as zinit
 * has it; no command runs `list` (zinit's default); `--version` / `-V`
 * print "zinit VERSION" as zinit does.
 */
export const zinit: Command = {
  meta: {
    name: "zinit",
    version: `zinit ${VERSION}`,
    description: "zinit-compatible CLI of hero-init's supervisor",
    usageExit: 1,
  },
  args: ROOT_ARGS,
  subCommands: { ...zinitCommands, init, help: help(() => zinit, "zinit") },
  run: (ctx) => import("./zinit.ts").then((m) => m.runList(ctx)),
};

/** Pure: zinit's short -V as --version (before the command only, as zinit takes it). */
export function zinitArgs(args: readonly string[]): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    const a = out[i] as string;
    if (a === "-s" || a === "--socket") i++;
    else if (a === "-V") out[i] = "--version";
    else if (!a.startsWith("-") || a === "--") break;
  }
  return out;
}

/** Runs a CLI command; returns the process exit code. */
export function runCli(argv0: string, args: string[]): Promise<number> {
  return argv0 === "zinit"
    ? runTree(zinit, zinitArgs(args), ["zinit"])
    : runTree(heroInit, args, ["hero-init"]);
}
