/** `npm run demo`'s command line and the VM's config (pure; scripts/demo.ts does the rest). */
import { isPeerUri } from "../lib/mycelium.ts";

export const DEMO_USAGE = `usage: npm run demo [-- [--no-mycelium] [--peer URI]…]
  --no-mycelium  no overlay: only the local UI address (the overlay needs root for the host node's TUN)
  --peer URI     a peer for the host's mycelium node, e.g. a public node tcp://IP:9651 (repeatable)`;

/** What the demo was asked for. */
export interface DemoArgs {
  mycelium: boolean;
  peers: string[];
  help: boolean;
}

/** Pure: the demo's arguments; throws naming the one it does not understand. */
export function parseDemoArgs(argv: string[]): DemoArgs {
  const a: DemoArgs = { mycelium: true, peers: [], help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--no-mycelium") a.mycelium = false;
    else if (arg === "--help" || arg === "-h") a.help = true;
    else if (arg === "--peer" || arg.startsWith("--peer=")) {
      const uri = arg === "--peer" ? argv[++i] : arg.slice("--peer=".length);
      if (!uri || !isPeerUri(uri))
        throw new Error(
          `--peer ${uri ?? ""}: not a mycelium peer URI (tcp://IP:PORT, quic://[IPv6]:PORT…)`,
        );
      a.peers.push(uri);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (a.peers.length && !a.mycelium)
    throw new Error("--peer needs the overlay: drop --no-mycelium");
  return a;
}

/**
 * Pure: the demo VM's vm.toml. eth0 on QEMU's user network, the UI on every
 * address for the host's port forward (QEMU's host side is 10.0.2.2); with
 * `peer`, mycelium runs and peers only with the host's node there.
 */
export function demoVmToml(peer: string | null): string {
  const base = `hostname = "demo-vm"\n\n[network]\ndns = ["10.0.2.3"]\n\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.2.15/24"\ngateway = "10.0.2.2"\n\n[ui]\nlisten = ["0.0.0.0"]\nallow = ["10.0.2.2/32"]\n`;
  return peer ? `${base}\n[mycelium]\npeers = ["${peer}"]\n` : base;
}
