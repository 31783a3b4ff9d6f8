/**
 * Finds the VM's mycelium address: polls the admin API (GET /api/v1/admin)
 * until it answers, takes nodeIp (or derives it from nodeSubnet on older
 * versions) and nodePubkey (shapes as mycelium 0.7.10 gives them, checked
 * by test/integration/mycelium-real.test.ts), then waits until the TUN carries that address and it is no
 * longer tentative (duplicate address detection), and publishes it. Keeps
 * watching: a restarted mycelium is noticed, a changed address republished.
 */
import { readFileSync } from "node:fs";
import ipaddr from "ipaddr.js";
import { log } from "../../lib/log.ts";
import { ipFromSubnet } from "../../lib/mycelium.ts";

/** What status, the control API and the UI show. */
export interface MyceliumStatus {
  state: "disabled" | "waiting" | "up" | "error";
  address: string | null;
  subnet: string | null;
  /** The node's public key (hex), once the admin API answered. */
  pubkey: string | null;
  reason: string;
}

const IFA_F_TENTATIVE = 0x40;
const IFA_F_DADFAILED = 0x08;

/** What an /api/v1/admin answer says about the node. */
interface AdminInfo {
  address: string;
  subnet: string;
  pubkey: string | null;
}

/** Pure: the address (and subnet, public key) from an /api/v1/admin answer. */
export function addressFromAdmin(body: unknown): AdminInfo | null {
  if (!body || typeof body !== "object") return null;
  const b = body as { nodeIp?: unknown; nodeSubnet?: unknown; nodePubkey?: unknown };
  const subnet = typeof b.nodeSubnet === "string" ? b.nodeSubnet : null;
  const ip = typeof b.nodeIp === "string" ? b.nodeIp : subnet ? ipFromSubnet(subnet) : null;
  if (!ip || !ipaddr.IPv6.isValid(ip)) return null;
  const pubkey =
    typeof b.nodePubkey === "string" && /^[0-9a-f]{64}$/i.test(b.nodePubkey)
      ? b.nodePubkey.toLowerCase()
      : null;
  return { address: ipaddr.IPv6.parse(ip).toString(), subnet: subnet ?? `${ip}/64`, pubkey };
}

/** Pure: whether /proc/net/if_inet6 shows `address` on `ifname`, usable (not tentative, DAD not failed). */
export function addressUsable(ifInet6: string, ifname: string, address: string): boolean {
  const want = ipaddr.IPv6.parse(address)
    .toByteArray()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return ifInet6.split("\n").some((line) => {
    const f = line.trim().split(/\s+/);
    if (f[0] !== want || f[5] !== ifname) return false;
    const flags = Number.parseInt(f[4] ?? "0", 16);
    return (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0;
  });
}

/** Starts watching (until `signal` aborts); `onAddress` gets each new usable address. Returns the live status. */
export function watchMycelium(
  apiAddr: string,
  ifname: string,
  onAddress: (address: string) => void,
  intervalMs = 1000,
  signal?: AbortSignal,
): MyceliumStatus {
  const status: MyceliumStatus = {
    state: "waiting",
    address: null,
    subnet: null,
    pubkey: null,
    reason: "waiting for the admin API",
  };
  let published: string | null = null;
  const tick = async () => {
    try {
      const res = await fetch(`http://${apiAddr}/api/v1/admin`, {
        signal: AbortSignal.timeout(2000),
      });
      if (!res.ok) throw new Error(`admin API: HTTP ${res.status}`);
      const found = addressFromAdmin(await res.json());
      if (!found) throw new Error("admin API: no nodeIp or nodeSubnet in the answer");
      status.subnet = found.subnet;
      status.pubkey = found.pubkey;
      let inet6 = "";
      try {
        inet6 = readFileSync("/proc/net/if_inet6", "utf8");
      } catch {
        inet6 = "";
      }
      if (!addressUsable(inet6, ifname, found.address)) {
        status.state = "waiting";
        status.reason = `${found.address} not usable on ${ifname} yet`;
        return;
      }
      status.state = "up";
      status.address = found.address;
      status.reason = "";
      if (published !== found.address) {
        published = found.address;
        log.info("mycelium", `address ${found.address} on ${ifname}`);
        onAddress(found.address);
      }
    } catch (e) {
      const reason = (e as Error).message;
      if (status.reason !== reason) log.warn("mycelium", reason);
      status.state = status.address ? "error" : "waiting";
      status.reason = reason;
    }
  };
  const loop = async () => {
    if (signal?.aborted) return;
    await tick();
    if (!signal?.aborted) setTimeout(loop, intervalMs);
  };
  void loop();
  return status;
}
