/**
 * zinit's legacy line protocol, pure: one line `cmd args` in, one
 * `{"state":"ok"|"error","body":…}` line out, then the connection closes
 * (`log` streams instead). Its commands are not the JSON-RPC methods: other
 * names, `kill` defaults to SIGTERM, `log snapshot` ends with the history.
 */
import { type ControlApi, controlError, type Reply, RPC, TOO_MANY_FOLLOWERS } from "./protocol.ts";

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

function argName(args: string[], cmd: string): string {
  const n = args[0];
  if (!n) throw controlError(RPC.INVALID_PARAMS, `${cmd}: missing service name`);
  return n;
}

/** `log [name]` follows the ring; `log snapshot [name]` writes what it holds and closes. */
function logStream(args: string[]): Reply {
  // The lines are read from the ring as the client takes them (server.ts), never copied whole.
  const snapshot = args[0] === "snapshot";
  const name = snapshot ? args[1] : args[0];
  return {
    kind: "stream",
    text: "",
    follow: { name, id: null, history: true, live: !snapshot },
    refused: legacyErr(TOO_MANY_FOLLOWERS).text,
  };
}

/** Handles one legacy line (`cmd args`). */
export async function handleLegacy(api: ControlApi, line: string): Promise<Reply> {
  const [cmd = "", ...args] = line.trim().split(/\s+/);
  try {
    switch (cmd) {
      case "list":
        return legacyOk(api.list());
      case "status":
        return legacyOk(api.status(argName(args, cmd)));
      case "start":
        await api.start(argName(args, cmd));
        return legacyOk(null);
      case "stop":
        await api.stop(argName(args, cmd));
        return legacyOk(null);
      case "restart":
        await api.restart(argName(args, cmd));
        return legacyOk(null);
      case "monitor":
        await api.monitor(argName(args, cmd));
        return legacyOk(null);
      case "forget":
        api.forget(argName(args, cmd));
        return legacyOk(null);
      case "kill":
        api.kill(argName(args, cmd), args[1] ?? "SIGTERM");
        return legacyOk(null);
      case "shutdown":
        api.shutdown();
        return legacyOk(null);
      case "reboot":
        api.reboot();
        return legacyOk(null);
      case "log":
        return logStream(args);
      case "":
        return legacyErr("empty command");
      default:
        return legacyErr(`unknown command '${cmd}'`);
    }
  } catch (e) {
    return legacyErr((e as Error).message);
  }
}
