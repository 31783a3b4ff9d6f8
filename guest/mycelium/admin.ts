/**
 * mycelium's admin API as the control socket and CLI use it: status, peers,
 * add and remove a peer (HTTP on the configured api_addr, mycelium's JSON
 * shapes). Errors become control errors with mycelium's answer in the
 * message: a peer URI mycelium would refuse is refused here first (the
 * same rule, lib/mycelium.ts parsePeerUri), and its refusals (400 bad
 * endpoint, 409 peer exists, 404 no such peer) are invalid params with its
 * text; anything else is internal.
 */
import { isPeerUri } from "../../lib/mycelium.ts";
import { controlError, RPC } from "../control/protocol.ts";
import type { MyceliumStatus } from "./discover.ts";

/** The answer when the VM has no [mycelium]. */
const DISABLED: MyceliumStatus = {
  state: "disabled",
  address: null,
  subnet: null,
  pubkey: null,
  reason: "no [mycelium] in the VM config",
};

/** Pure: the endpoint of addPeer/removePeer params (`["uri"]` or `{endpoint}`), refused unless mycelium would take it. */
export function peerParam(params: unknown): string {
  const p = Array.isArray(params) ? params[0] : (params as { endpoint?: unknown } | null)?.endpoint;
  if (typeof p !== "string" || !isPeerUri(p)) {
    throw controlError(
      RPC.INVALID_PARAMS,
      `invalid peer URI ${JSON.stringify(p)}: use tcp://IP:PORT, quic://[IPv6]:PORT (an address, not a name), tls://… or vsock://CID:PORT`,
    );
  }
  return p;
}

/** Pure: the control error for mycelium's refusal of `what` (its status and text). */
export function refusal(status: number, text: string, what: string): Error {
  const said = text.trim() ? `: ${text.trim()}` : "";
  if (status === 409) return controlError(RPC.INVALID_PARAMS, `peer ${what} already exists`);
  if (status === 404) return controlError(RPC.INVALID_PARAMS, `no peer ${what}`);
  if (status === 400 || status === 422)
    return controlError(RPC.INVALID_PARAMS, `mycelium refused ${what}${said}`);
  return controlError(RPC.INTERNAL, `mycelium: HTTP ${status} for ${what}${said}`);
}

/** The `mycelium_*` control methods for an admin API at `apiAddr`. */
export function myceliumAdmin(apiAddr: string | null, status: () => MyceliumStatus | null) {
  const call = async (path: string, init?: RequestInit): Promise<Response> => {
    if (!apiAddr) throw controlError(RPC.CONFIG_ERROR, "this VM has no [mycelium] in its config");
    try {
      return await fetch(`http://${apiAddr}/api/v1/admin${path}`, {
        ...init,
        signal: AbortSignal.timeout(5000),
      });
    } catch (e) {
      throw controlError(
        RPC.INTERNAL,
        `mycelium admin API at ${apiAddr} does not answer: ${(e as Error).message}`,
      );
    }
  };
  /** Resolves for 2xx; otherwise throws mycelium's refusal. */
  const expectOk = async (r: Response, what: string): Promise<void> => {
    if (!r.ok) throw refusal(r.status, await r.text().catch(() => ""), what);
  };
  return async (method: string, params: unknown): Promise<unknown> => {
    switch (method) {
      case "mycelium_status":
        return status() ?? DISABLED;
      case "mycelium_peers": {
        const r = await call("/peers");
        await expectOk(r, "the peer list");
        return r.json();
      }
      case "mycelium_addPeer": {
        const endpoint = peerParam(params);
        const r = await call("/peers", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ endpoint }),
        });
        await expectOk(r, endpoint);
        return null;
      }
      case "mycelium_removePeer": {
        const endpoint = peerParam(params);
        const r = await call(`/peers/${encodeURIComponent(endpoint)}`, { method: "DELETE" });
        await expectOk(r, endpoint);
        return null;
      }
      default:
        throw controlError(RPC.METHOD_NOT_FOUND, `Method not found: ${method}`);
    }
  };
}
