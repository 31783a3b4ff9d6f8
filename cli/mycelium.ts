/**
 * `hero-init mycelium status|peers|add-peer URI|remove-peer URI`: mycelium
 * at run time, through the control socket (which talks to mycelium's admin
 * API). `--json` prints the raw result.
 */
import { connect, socketPath } from "../guest/control/client.ts";

const USAGE =
  "usage: hero-init mycelium [-s SOCKET] [--json] status | peers | add-peer URI | remove-peer URI\n";

/** Runs the command; returns the exit code. */
export async function runMycelium(args: string[]): Promise<number> {
  let sock: string | undefined;
  let json = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "-s") sock = args[++i];
    else if (args[i] === "--json") json = true;
    else rest.push(args[i] as string);
  }
  const [cmd, arg] = rest;
  const method = {
    status: "mycelium_status",
    peers: "mycelium_peers",
    "add-peer": "mycelium_addPeer",
    "remove-peer": "mycelium_removePeer",
  }[cmd ?? ""];
  if (!method || ((cmd === "add-peer" || cmd === "remove-peer") && !arg)) {
    process.stderr.write(USAGE);
    return 1;
  }
  try {
    const client = await connect(socketPath(sock));
    const r = await client.call(method, arg ? [arg] : []);
    client.close();
    if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else if (cmd === "status") {
      const s = r as {
        state: string;
        address: string | null;
        subnet: string | null;
        reason: string;
      };
      process.stdout.write(
        `state: ${s.state}\naddress: ${s.address ?? "-"}\nsubnet: ${s.subnet ?? "-"}\n${s.reason ? `reason: ${s.reason}\n` : ""}`,
      );
    } else if (cmd === "peers") {
      for (const p of r as {
        endpoint: { proto: string; socketAddr: string };
        type: string;
        connectionState: string;
      }[]) {
        process.stdout.write(
          `${p.endpoint.proto}://${p.endpoint.socketAddr} ${p.type} ${p.connectionState}\n`,
        );
      }
    }
    return 0;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
}
