/**
 * The control socket (/var/run/zinit.sock and /tmp/zinit.sock): moves bytes
 * between clients and the pure protocol handlers (legacy.ts, jsonrpc.ts).
 * Never trusts a client; every byte PID 1 keeps for one is bounded
 * (connections.ts holds the state and the totals):
 * - connections: at most MAX_CONNECTIONS over all paths; the next peer gets
 *   one error line and is closed (and counted); at most MAX_FOLLOWERS of them
 *   follow logs, so followers alone cannot take every connection; a
 *   connection done with (answered, refused) waits LINGER_S at most for its
 *   peer to read the last line, MAX_LINGERING at once;
 * - requests (framing.ts: JSON-RPC messages end where their brackets
 *   balance, legacy commands at a newline): a request longer than
 *   MAX_REQUEST gets an error and the connection closes; while a client has
 *   answers it has not read (or MAX_REQUEST bytes of requests waiting), its
 *   socket is not read at all;
 *   partial requests of all clients together are bounded by MAX_INPUT_TOTAL
 *   (the client holding the most is dropped);
 * - answers: bytes the kernel did not take wait per client (at most
 *   MAX_PENDING, else the client is dropped) and over all clients (at most
 *   MAX_PENDING_TOTAL, else the client holding the most is dropped);
 * - log streams (`log`, stream_subscribeLogs; followers.ts) are never
 *   queued: a follower is a position in the ring (supervisor/logs.ts
 *   follow()), lines are read from the ring only when the client's socket
 *   takes them, and lines the ring evicted before a slow client got to them
 *   come as one `[-] zinit: N lines dropped` line (zinit's words for a
 *   lagging reader).
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { SocketHandler } from "bun";
import { describeError, log } from "../../lib/log.ts";
import { type Conn, Connections, type ControlSocket, controlCounters } from "./connections.ts";
import { pump, startFollow, unfollow } from "./followers.ts";
import { handleJsonRpc } from "./jsonrpc.ts";
import { handleLegacy } from "./legacy.ts";
import { type ControlApi, MAX_FOLLOWERS, type Reply } from "./protocol.ts";

/** The reply to one request: JSON-RPC when it starts with `{` or `[`, else the legacy protocol. */
function answer(
  conns: Connections,
  s: ControlSocket,
  api: ControlApi,
  message: string,
  discover?: () => unknown,
): Promise<Reply | null> {
  const first = message[0];
  if (first !== "{" && first !== "[") return handleLegacy(api, message);
  return handleJsonRpc(api, message, discover, { unsubscribe: (id) => unfollow(conns, s, id) });
}

/** The socket handlers every control socket shares: the limits hold over all of them together. */
function createHandlers(api: ControlApi, discover?: () => unknown): SocketHandler<Conn> {
  const conns = new Connections();

  /** Writes a reply, closes after it, or starts its log stream (unless MAX_FOLLOWERS follow). */
  const perform = (s: ControlSocket, reply: Reply | null) => {
    if (!reply) return;
    if (reply.kind === "write") {
      conns.write(s, reply.text);
      if (reply.close) conns.finish(s);
      return;
    }
    if (conns.followers >= MAX_FOLLOWERS) {
      controlCounters.followersRefused++;
      conns.warn(`log follower refused: ${conns.followers} follow (limit ${MAX_FOLLOWERS})`);
      conns.write(s, reply.refused);
      if (reply.follow.id === null) conns.finish(s);
      return;
    }
    conns.write(s, reply.text);
    startFollow(conns, api.logRing, s, reply.follow);
  };

  /** Handles the waiting requests one after another, while the client reads the answers. */
  const handle = async (s: ControlSocket) => {
    const c = s.data;
    if (c.busy) return;
    c.busy = true;
    try {
      while (c.lines.length && !c.closing && c.outBytes === 0) {
        const line = conns.nextLine(s);
        try {
          const reply = await answer(conns, s, api, line, discover);
          if (!c.closed) perform(s, reply);
        } catch (e) {
          log.error("control", `request failed: ${describeError(e)}`);
        }
      }
    } finally {
      c.busy = false;
    }
    conns.maybeResume(s);
  };

  return {
    open: (s) => conns.accept(s),
    data(s, chunk) {
      if (s.data.closing) return;
      if (conns.receive(s, chunk.toString())) void handle(s);
    },
    drain(s) {
      const c = s.data;
      conns.flush(s);
      if (c.closed || c.outBytes > 0) return;
      if (c.closing) return conns.finish(s);
      pump(conns, s);
      if (c.outBytes === 0) {
        conns.maybeResume(s);
        void handle(s);
      }
    },
    close: (s) => conns.closed(s),
    timeout: (s) => s.terminate(),
    error(s, err) {
      conns.release(s);
      conns.warn(`client error: ${err.message}`);
    },
  };
}

/**
 * Starts listening on every path; returns a function that stops all of them.
 * `discover`: rpc.discover's answer (default: the method table's OpenRPC document).
 */
export function startControlServer(
  api: ControlApi,
  paths: readonly string[],
  discover?: () => unknown,
): () => void {
  const stops: (() => void)[] = [];
  // One set of handlers for every path: the limits hold over all control sockets together.
  const socket = createHandlers(api, discover);
  for (const path of paths) {
    try {
      if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) unlinkSync(path);
      const server = Bun.listen<Conn>({ unix: path, socket });
      chmodSync(path, 0o600);
      stops.push(() => server.stop(true));
      log.info("control", `listening on ${path}`);
    } catch (e) {
      log.error("control", `cannot listen on ${path}: ${(e as Error).message}`);
    }
  }
  return () => {
    for (const s of stops) s();
  };
}
