/**
 * `hero-init mycelium status|peers|add-peer URI|remove-peer URI`: mycelium
 * at run time, through the control socket (which talks to mycelium's admin
 * API). `--json` prints the raw result. Errors (usage ones too) exit 1.
 */
import { connect, socketPath } from "../guest/control/client.ts";
import { type Command, runData } from "./run.ts";

/** Options before or after the command (as the old hand-written parser took them). */
const OPTIONS = {
  socket: { type: "string", alias: "s", valueHint: "path", description: "control socket" },
  json: { type: "boolean", description: "print the raw result as JSON" },
} as const;
const URI_ARG = {
  uri: {
    type: "positional",
    required: true,
    description: "peer endpoint, e.g. tcp://[2a01::1]:9651",
  },
} as const;

interface Status {
  state: string;
  address: string | null;
  subnet: string | null;
  pubkey?: string | null;
  reason: string;
}
/**
 * A peer as mycelium 0.7.10's admin API lists it: endpoint
 * `{proto, addr: {socket: "IP:PORT"} | {vsock: {cid, port}}}`; type
 * static | inbound | linkLocalDiscovery; connectionState alive |
 * connecting | dead (plus byte counts and ages). `socketAddr` is the shape
 * hero-init assumed before it met the real daemon; still read.
 */
interface Peer {
  endpoint: {
    proto: string;
    addr?: { socket?: string; vsock?: { cid: number; port: number } };
    socketAddr?: string;
  };
  type: string;
  connectionState: string;
}

/** Pure: the text of `mycelium status`. */
export function statusText(s: Status): string {
  return `state: ${s.state}\naddress: ${s.address ?? "-"}\nsubnet: ${s.subnet ?? "-"}\npubkey: ${s.pubkey ?? "-"}\n${s.reason ? `reason: ${s.reason}\n` : ""}`;
}

/** Pure: a peer's endpoint as a URI, the form add-peer and remove-peer take. */
export function endpointUri(e: Peer["endpoint"]): string {
  const v = e.addr?.vsock;
  const addr = e.addr?.socket ?? (v ? `${v.cid}:${v.port}` : (e.socketAddr ?? "?"));
  return `${e.proto}://${addr}`;
}

/** Pure: the text of `mycelium peers`, one line per peer. */
export function peersText(peers: Peer[]): string {
  return peers.map((p) => `${endpointUri(p.endpoint)} ${p.type} ${p.connectionState}\n`).join("");
}

/**
 * One mycelium command: calls method through the control socket and prints
 * text(result) (or JSON); without text, the command takes a peer URI and
 * prints nothing.
 */
function call(
  name: string,
  description: string,
  method: string,
  text?: (r: unknown) => string,
): Command {
  return {
    meta: { name, description },
    args: text ? OPTIONS : { ...URI_ARG, ...OPTIONS },
    async run(ctx) {
      const up = runData(ctx.data).up;
      const uri = ctx.args.uri as string | undefined;
      const socket = (ctx.args.socket ?? up.socket) as string | undefined;
      try {
        const client = await connect(socketPath(socket));
        const r = await client.call(method, uri ? [uri] : []);
        client.close();
        const json = ctx.args.json === true || up.json === true;
        process.stdout.write(json ? `${JSON.stringify(r)}\n` : (text?.(r) ?? ""));
        return 0;
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
        return 1;
      }
    },
  };
}

/** `hero-init mycelium …`. */
export const mycelium: Command = {
  meta: {
    name: "mycelium",
    description: "mycelium in the VM: status and peers",
    usageExit: 1,
  },
  args: OPTIONS,
  subCommands: {
    status: call("status", "state, address, subnet and public key", "mycelium_status", (r) =>
      statusText(r as Status),
    ),
    peers: call("peers", "peers and their connection state", "mycelium_peers", (r) =>
      peersText(r as Peer[]),
    ),
    "add-peer": call("add-peer", "connect to a peer", "mycelium_addPeer"),
    "remove-peer": call("remove-peer", "drop a peer", "mycelium_removePeer"),
  },
};
