/**
 * zinit's legacy line protocol (0.2.14), pure: one line `cmd args` in, one
 * `{"state":"ok"|"error","body":…}` line out, then the connection closes
 * (`log` streams instead). The line is split as zinit splits it (shlex:
 * quotes, backslashes, `#` comments); each command takes zinit's number of
 * arguments, and errors are zinit's texts (errors.ts). Its commands are not
 * the JSON-RPC methods: other names, `kill` needs its signal, `log
 * snapshot` ends with the history. hero-init adds `restart NAME` and `log
 * [snapshot] NAME` (one service's lines), where zinit answers an error.
 */
import { SERVICE_NAME_RE } from "../../lib/service-spec.ts";
import { legacyText } from "./errors.ts";
import { type ControlApi, type Reply, TOO_MANY_FOLLOWERS } from "./protocol.ts";

const legacyOk = (body: unknown): Reply => ({
  kind: "write",
  text: `${JSON.stringify({ state: "ok", body })}\n`,
  close: true,
});
const legacyErr = (msg: string): Reply => ({
  kind: "write",
  text: `${JSON.stringify({ state: "error", body: msg })}\n`,
  close: true,
});

/** Reads a quoted part from `i` (just after the opening quote); returns its text and where it ended, or null if unterminated. */
function quoted(line: string, i: number, q: string): { text: string; end: number } | null {
  let text = "";
  for (let j = i; j < line.length; j++) {
    const c = line[j] as string;
    if (c === q) return { text, end: j + 1 };
    if (
      q === '"' &&
      c === "\\" &&
      j + 1 < line.length &&
      '$`"\\\n'.includes(line[j + 1] as string)
    ) {
      if (line[j + 1] !== "\n") text += line[j + 1];
      j++;
    } else text += c;
  }
  return null;
}

/**
 * Pure: a command line split into words as zinit splits it (the shlex
 * crate): blanks separate, '…' is literal, "…" takes \" \\ \$ \` escapes,
 * a backslash takes the next character (a newline after it joins lines), a
 * word starting with # starts a comment. Null for an unbalanced quote or a
 * trailing backslash (zinit: `invalid command syntax`).
 */
export function commandWords(line: string): string[] | null {
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === "#" && word === null) {
      const nl = line.indexOf("\n", i);
      i = nl < 0 ? line.length : nl;
    } else if (c === "'" || c === '"') {
      const q = quoted(line, i + 1, c);
      if (!q) return null;
      word = (word ?? "") + q.text;
      i = q.end;
    } else if (c === "\\") {
      if (i + 1 >= line.length) return null;
      if (line[i + 1] !== "\n") word = (word ?? "") + line[i + 1];
      i += 2;
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** A command: how many arguments it takes (zinit's counts) and what it does. */
interface LegacyCommand {
  args: number | "any";
  run(api: ControlApi, args: string[]): unknown;
}

const COMMANDS: ReadonlyMap<string, LegacyCommand> = new Map<string, LegacyCommand>([
  ["list", { args: "any", run: (api) => api.list() }],
  ["shutdown", { args: "any", run: (api) => api.shutdown() }],
  ["reboot", { args: "any", run: (api) => api.reboot() }],
  ["start", { args: 1, run: (api, [n]) => api.start(n as string) }],
  ["stop", { args: 1, run: (api, [n]) => api.stop(n as string) }],
  ["status", { args: 1, run: (api, [n]) => api.status(n as string) }],
  ["forget", { args: 1, run: (api, [n]) => api.forget(n as string) }],
  ["monitor", { args: 1, run: (api, [n]) => api.monitor(n as string) }],
  ["kill", { args: 2, run: (api, [n, sig]) => api.kill(n as string, sig as string) }],
  // hero-init's: zinit 0.2.14 has no restart command (its CLI stops, polls, starts).
  ["restart", { args: 1, run: (api, [n]) => api.restart(n as string) }],
]);

/** Whether `name` is a service: monitored, or with lines in the ring. */
function known(api: ControlApi, name: string): boolean {
  if (api.logRing.end(name) > 0) return true;
  try {
    api.status(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * `log` follows the ring, `log snapshot` writes what it holds and closes
 * (zinit's two); hero-init's `log NAME` follows one service (one that may
 * not exist yet), `log snapshot NAME` writes a known service's lines.
 * Anything else is zinit's error.
 */
function logStream(api: ControlApi, args: string[]): Reply {
  const snapshot = args[0] === "snapshot";
  const rest = snapshot ? args.slice(1) : args;
  const name = rest[0];
  const bad =
    rest.length > 1 ||
    (name !== undefined && (!SERVICE_NAME_RE.test(name) || (snapshot && !known(api, name))));
  if (bad) return legacyErr("invalid log command arguments");
  // The lines are read from the ring as the client takes them (server.ts), never copied whole.
  return {
    kind: "stream",
    text: "",
    follow: { name, id: null, history: true, live: !snapshot },
    refused: legacyErr(TOO_MANY_FOLLOWERS).text,
  };
}

/** Handles one legacy line (`cmd args`). */
export async function handleLegacy(api: ControlApi, line: string): Promise<Reply> {
  const words = commandWords(line);
  if (words === null) return legacyErr("invalid command syntax");
  const [cmd, ...args] = words;
  if (cmd === undefined) return legacyErr("unknown command");
  if (cmd === "log") return logStream(api, args);
  const c = COMMANDS.get(cmd);
  if (!c || (c.args !== "any" && c.args !== args.length))
    return legacyErr(`unknown command '${cmd}' or wrong arguments count`);
  try {
    const body = await c.run(api, args);
    return legacyOk(body ?? null);
  } catch (e) {
    return legacyErr(legacyText(e, cmd));
  }
}
