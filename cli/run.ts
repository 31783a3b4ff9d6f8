/**
 * The runner of hero-init's command tree (citty definitions, cli/index.ts):
 * follows the command names in the arguments down the tree, loading only
 * the commands named; prints the generated usage for --help (exit 0);
 * checks options strictly (citty's parser accepts anything, so a typo
 * would pass silently); runs the command and turns its result into the
 * exit code.
 *
 * A command's run returns its exit code (nothing: 0). A usage error (a
 * HeroError with code "usage", or citty's CLIError) prints
 * "COMMAND: message" and a one-line synopsis, exit meta.usageExit of the
 * nearest command that sets it (default 2; zinit's commands keep zinit's 1).
 * Any other error escaping a command: "COMMAND: message", exit 2 for an
 * input error (bad input: isHeroError(e, "input")), else 1.
 */
import { parseArgs as nodeParseArgs } from "node:util";
import {
  type ArgsDef,
  type CommandDef,
  parseArgs,
  type Resolvable,
  renderUsage,
  runCommand,
} from "citty";
import { HeroError, isHeroError } from "../lib/errors.ts";
import { VERSION } from "../lib/version.ts";

declare module "citty" {
  interface CommandMeta {
    /** Exit code of a usage error in this command and the ones below it (default 2). */
    usageExit?: number;
    /** Text printed after the generated usage by --help (exit codes, formats). */
    notes?: string;
  }
}

/** Any command of the tree (citty's CommandDef is invariant in its args, as its own SubCommandsDef). */
// biome-ignore lint/suspicious/noExplicitAny: citty's own type for a command of any args
export type Command = CommandDef<any>;

/** What every command's run receives as `data`. */
export interface RunData {
  /** Options given to the commands above this one (zinit's `-s SOCKET` and `--json` before the command). */
  up: Record<string, unknown>;
  /** The environment the command reads (a test passes its own). */
  env: Record<string, string | undefined>;
}

/** A usage error: a wrong, missing or unknown argument, named in the message. */
export function usageError(message: string, field?: string): HeroError {
  return new HeroError("usage", message, field ? { field } : {});
}

/** The data a command's run was given (defaults when run outside the runner). */
export function runData(data: unknown): RunData {
  return (data as RunData | undefined) ?? { up: {}, env: process.env };
}

/** A citty Resolvable's value (a lazy subcommand is loaded here). */
export async function resolve<T>(v: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Option tokens of args as node's parseArgs sees them with the options defs declares. */
function tokenize(args: string[], defs: ArgsDef) {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  const names = new Map<string, string>([["help", "help"]]);
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    const type = def.type === "boolean" ? "boolean" : "string";
    options[name] = { type };
    names.set(name, name);
    const aliases = [(def as { alias?: string | string[] }).alias ?? []].flat();
    // citty also takes --vmConfig for --vm-config.
    if (camel(name) !== name) aliases.push(camel(name));
    for (const a of aliases) {
      if (a.length === 1) (options[name] as { short?: string }).short = a;
      else options[a] = { type };
      names.set(a, name);
    }
  }
  const { tokens } = nodeParseArgs({
    args,
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  /** The defs name an option token stands for (aliases and camelCase spellings mapped). */
  const nameOf = (token: string) => names.get(token);
  return { tokens, nameOf };
}

/** Pure: the index of the subcommand's name in args: the first positional, values of defs' options skipped; -1 if none. */
export function subcommandIndex(args: string[], defs: ArgsDef): number {
  const { tokens } = tokenize(args, defs);
  for (const t of tokens) {
    if (t.kind === "option-terminator") return -1;
    if (t.kind === "positional") return t.index;
  }
  return -1;
}

/** Pure: whether --help or -h is among the options (not after "--"). */
export function wantsHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** Pure: every value of a repeatable option, in order (citty keeps only the last). */
export function optionValues(args: string[], defs: ArgsDef, name: string): string[] {
  const { tokens, nameOf } = tokenize(args, defs);
  const values: string[] = [];
  for (const t of tokens) {
    if (t.kind === "option-terminator") break;
    if (t.kind === "option" && nameOf(t.name) === name && t.value !== undefined)
      values.push(t.value);
  }
  return values;
}

/**
 * Pure: the first thing wrong with args for a command with these defs, as a
 * message naming the option or argument; null when nothing is. Arguments
 * after "--" belong to the command (exec's argv) and are not checked.
 */
export function argsProblem(args: string[], defs: ArgsDef): string | null {
  const { tokens, nameOf } = tokenize(args, defs);
  const positionals = Object.entries(defs).filter(([, d]) => d.type === "positional");
  const given = new Set<string>();
  let before = 0;
  let all = 0;
  let ended = false;
  for (const t of tokens) {
    if (t.kind === "option-terminator") ended = true;
    else if (t.kind === "positional") {
      all++;
      if (!ended && ++before > positionals.length) return `unexpected argument "${t.value}"`;
    } else {
      const negated = t.name.startsWith("no-") ? nameOf(t.name.slice(3)) : undefined;
      const name = nameOf(t.name) ?? (negated && defs[negated]?.type === "boolean" && negated);
      if (!name) return `unknown option ${t.rawName}`;
      given.add(name);
      const def = defs[name];
      if (def?.type !== "string" && def?.type !== "enum") continue;
      if (t.value === undefined) return `${t.rawName} needs a value`;
      const options = def.type === "enum" ? (def.options ?? []) : [];
      if (options.length && !options.includes(t.value))
        return `${t.rawName} must be one of ${options.join(", ")} (got "${t.value}")`;
    }
  }
  for (const [name, def] of Object.entries(defs))
    if (def.type !== "positional" && def.required && def.default === undefined && !given.has(name))
      return `--${name} is required`;
  for (const [i, [name, def]] of positionals.entries())
    if (i >= all && def.required !== false && def.default === undefined)
      return `${name.toUpperCase()} is required`;
  return null;
}

/** The options of args that defs declares, parsed by citty (for the commands below). */
function ownOptions(args: string[], defs: ArgsDef): Record<string, unknown> {
  const parsed = parseArgs(args, defs) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(defs)) if (parsed[name] !== undefined) out[name] = parsed[name];
  return out;
}

const ESC = String.fromCharCode(27);
const ANSI = new RegExp(`${ESC}\\[[0-9;]*m`, "g");
/** Blanks at the end of a line, before any colour escapes that end it. */
const TRAILING_BLANKS = new RegExp(`[ \\t]+((?:${ESC}\\[[0-9;]*m)*)$`, "gm");

/** Pure: text without colour escapes. */
export function plain(text: string): string {
  return text.replace(ANSI, "");
}

/** The generated usage of a command at path (citty's, named by the whole path, with the notes after it). */
export async function usageText(cmd: Command, path: string[]): Promise<string> {
  const meta = (await resolve(cmd.meta)) ?? {};
  const rendered = await renderUsage({
    ...cmd,
    meta: { ...meta, name: path.join(" "), version: VERSION },
  });
  // citty pads every column, the last one too: no trailing blanks.
  const text = rendered.replace(TRAILING_BLANKS, "$1");
  return meta.notes ? `${text}\n\n${meta.notes}` : text;
}

/** Writes the usage of a command to stdout (plain unless stdout is a terminal). */
export async function printUsage(cmd: Command, path: string[]): Promise<void> {
  const text = await usageText(cmd, path);
  process.stdout.write(`${process.stdout.isTTY ? text : plain(text)}\n`);
}

/** Where the arguments led: the command, its path, its own arguments and what the commands above parsed. */
interface Found {
  cmd: Command;
  path: string[];
  args: string[];
  up: Record<string, unknown>;
  usageExit: number;
  /** A usage problem met on the way (unknown command, bad option above the command). */
  problem?: string;
}

/** Follows the command names in args down from root, resolving (loading) only the commands named. */
async function descend(root: Command, args: string[], path: string[]): Promise<Found> {
  const f: Found = { cmd: root, path: [...path], args, up: {}, usageExit: 2 };
  for (;;) {
    const meta = await resolve(f.cmd.meta);
    if (meta?.usageExit !== undefined) f.usageExit = meta.usageExit;
    const subs = (await resolve(f.cmd.subCommands)) ?? {};
    if (Object.keys(subs).length === 0) return f;
    const defs = (await resolve(f.cmd.args)) ?? {};
    const i = subcommandIndex(f.args, defs);
    if (i < 0) return f;
    const word = f.args[i] as string;
    const sub = Object.hasOwn(subs, word) ? await resolve(subs[word]) : undefined;
    if (!sub) return { ...f, problem: `unknown command "${word}"` };
    const own = f.args.slice(0, i);
    const problem = argsProblem(own, defs);
    if (problem) return { ...f, problem };
    Object.assign(f.up, ownOptions(own, defs));
    f.cmd = sub;
    f.path.push(word);
    f.args = f.args.slice(i + 1);
  }
}

/** Prints a usage error with the command's synopsis; returns its exit code. */
async function usageFailure(f: Found, message: string): Promise<number> {
  const usage = plain(await usageText(f.cmd, f.path));
  const line = usage.split("\n").find((l) => l.startsWith("USAGE ")) ?? "";
  const name = f.path.join(" ");
  process.stderr.write(
    `${name}: ${message}\nusage: ${line.slice("USAGE ".length)}  (more: ${name} --help)\n`,
  );
  return f.usageExit;
}

/** The exit code for an error that escaped a command's run. */
async function failure(f: Found, e: unknown): Promise<number> {
  if (isHeroError(e, "input.usage")) return usageFailure(f, e.toString());
  if ((e as Error)?.name === "CLIError") return usageFailure(f, plain((e as Error).message));
  const message = isHeroError(e, "input") ? e.toString() : ((e as Error)?.message ?? String(e));
  process.stderr.write(`${f.path.join(" ")}: ${message}\n`);
  return isHeroError(e, "input") ? 2 : 1;
}

/**
 * Runs the command args name below root (path: root's name, e.g.
 * ["hero-init"], or the words of a subtree's root); returns the exit code.
 */
export async function runTree(
  root: Command,
  args: string[],
  path: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  const f = await descend(root, args, path);
  if (f.problem) return usageFailure(f, f.problem);
  if (wantsHelp(args)) {
    await printUsage(f.cmd, f.path);
    return 0;
  }
  const version = f.cmd === root ? (await resolve(root.meta))?.version : undefined;
  if (version && f.args.includes("--version")) {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  const subs = (await resolve(f.cmd.subCommands)) ?? {};
  if (!f.cmd.run)
    return usageFailure(f, `which command? (${Object.keys(subs).join(", ") || "none"})`);
  const problem = argsProblem(f.args, (await resolve(f.cmd.args)) ?? {});
  if (problem) return usageFailure(f, problem);
  try {
    const data: RunData = { up: f.up, env };
    const { result } = await runCommand(
      { ...f.cmd, subCommands: undefined },
      {
        rawArgs: f.args,
        data,
      },
    );
    return typeof result === "number" ? result : 0;
  } catch (e) {
    return failure(f, e);
  }
}
