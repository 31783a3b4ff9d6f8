/**
 * Two network namespaces joined by a veth pair, for the DHCP tests
 * (test/integration/dhcp.test.ts, test/attack/dhcp.test.ts): a server side
 * (veth-s, 10.77.0.1/24, up) and a client side (veth-c, left down and
 * unconfigured for the client under test; lo up), apart as a VM and its
 * host are. Plus the two process helpers those tests share.
 */
import type { Subprocess } from "bun";

/** Runs argv; its stdout, or an error with its stderr. */
export function must(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Spawns and collects stdout+stderr as text, for polling. */
export function spawnCollecting(argv: string[]): { p: Subprocess; out: () => string } {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) text += dec.decode(chunk);
  };
  void pump(p.stdout);
  void pump(p.stderr);
  return { p, out: () => text };
}

/** Makes namespaces `srv` and `cli` and the veth pair between them. */
export function makeVethPair(srv: string, cli: string): void {
  must(["ip", "netns", "add", srv]);
  must(["ip", "netns", "add", cli]);
  must([
    "ip",
    "link",
    "add",
    "veth-s",
    "netns",
    srv,
    "type",
    "veth",
    "peer",
    "name",
    "veth-c",
    "netns",
    cli,
  ]);
  must(["ip", "-n", srv, "addr", "add", "10.77.0.1/24", "dev", "veth-s"]);
  must(["ip", "-n", srv, "link", "set", "veth-s", "up"]);
  must(["ip", "-n", cli, "link", "set", "lo", "up"]);
}

/** Deletes the namespaces (and with them the veth pair). */
export function dropVethPair(srv: string, cli: string): void {
  Bun.spawnSync(["ip", "netns", "del", srv]);
  Bun.spawnSync(["ip", "netns", "del", cli]);
}
