/**
 * The daemon behind a zinit socket, whichever protocol it speaks: JSON-RPC
 * (hero-init, zinit ≥ 0.2.15) or the legacy line protocol (zinit ≤ 0.2.14,
 * which answers a JSON-RPC request with a legacy error). The first call
 * tells; from then on each call goes the daemon's way. The commands
 * (cli/zinit.ts) call JSON-RPC method names; on a legacy daemon they become
 * its commands, and what it lacks (stats, the HTTP proxy) is an error
 * saying so.
 */
import { connect, legacyCommand, legacyLog } from "../guest/control/client.ts";
import { HeroError, isHeroError } from "../lib/errors.ts";

/** What the commands talk to. */
export interface Daemon {
  /** Calls a JSON-RPC method (its legacy command on a legacy daemon). */
  call(method: string, params?: unknown[]): Promise<unknown>;
  /** Whether the daemon speaks JSON-RPC (known after the first call). */
  jsonRpc(): boolean;
  /** The log lines so far (of one service), then, with `follow`, new ones until the connection ends. */
  logs(filter: string | undefined, follow: boolean, onLine: (line: string) => void): Promise<void>;
  close(): void;
}

/** Pure: the legacy command line of a JSON-RPC call; null when the legacy protocol has none. */
export function legacyLine(method: string, params: readonly unknown[]): string | null {
  const name = String(params[0] ?? "");
  switch (method) {
    case "service_list":
      return "list";
    case "system_shutdown":
      return "shutdown";
    case "system_reboot":
      return "reboot";
    case "service_status":
    case "service_start":
    case "service_stop":
    case "service_monitor":
    case "service_forget":
      // As zinit 0.2.14's client writes it: the name as given, unquoted.
      return `${method.slice("service_".length)} ${name}`;
    case "service_kill":
      return `kill ${name} ${String(params[1] ?? "")}`;
    default:
      return null;
  }
}

/** Pure: whether a zinit log line (`[+] name: text`) is service `name`'s, as zinit's clients filter. */
export function lineOf(line: string, name: string): boolean {
  return line.slice(4).startsWith(`${name}:`);
}

/** Connects to the daemon at `path`. */
export async function openDaemon(path: string): Promise<Daemon> {
  let notify: ((params: unknown) => void) | undefined;
  const rpc = await connect(path, (p) => notify?.(p));
  let legacy = false;
  let asked = false;
  const call = async (method: string, params: unknown[] = []) => {
    if (!legacy) {
      try {
        const r = await rpc.call(method, params);
        asked = true;
        return r;
      } catch (e) {
        if (!isHeroError(e, "control.legacy")) throw e;
        legacy = true;
        rpc.close();
      }
    }
    const line = legacyLine(method, params);
    if (line === null)
      throw new HeroError(
        "control.legacy-error",
        `this zinit speaks only the legacy protocol: it has no ${method}`,
      );
    return legacyCommand(path, line);
  };
  const logs = async (filter: string | undefined, follow: boolean, onLine: (l: string) => void) => {
    // zinit's clients check the service first: an unknown one is an error, not an empty log.
    if (filter !== undefined) await call("service_status", [filter]);
    else if (!asked && !legacy) await call("service_list");
    const keep = (l: string) => filter === undefined || lineOf(l, filter);
    if (legacy) return legacyLog(path, follow, (l) => keep(l) && onLine(l));
    for (const l of (await call(
      "stream_currentLogs",
      filter === undefined ? [] : [filter],
    )) as string[])
      if (keep(l)) onLine(l);
    if (!follow) return;
    notify = (p) => {
      const l = (p as { result?: unknown } | null)?.result;
      if (typeof l === "string" && keep(l)) onLine(l);
    };
    await call("stream_subscribeLogs", filter === undefined ? [] : [filter]);
    await rpc.closed; // until interrupted, or the daemon ends
  };
  return {
    call,
    jsonRpc: () => !legacy,
    logs,
    close: () => rpc.close(),
  };
}
