/**
 * Whether a command line asks for `init` (the supervisor only), pure and
 * tiny: PID 1 reads it before loading anything else (cli/main.ts). zinit's
 * global options may come first: `zinit -s SOCK -d init -c DIR`,
 * `hero-init --json init`. Without `init`, PID 1 boots the machine (the
 * kernel's /sbin/init path).
 */

/** Global options that take a value (their value is not the command). */
const WITH_VALUE = new Set(["-s", "--socket"]);

/** Pure: whether the first word after the global options is `init`. */
export function isInitCommand(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (WITH_VALUE.has(a)) i++;
    else if (a === "--") return false;
    else if (!a.startsWith("-")) return a === "init";
  }
  return false;
}
