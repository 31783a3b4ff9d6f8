/**
 * mycelium's admin API as the control socket and CLI use it: status, peers,
 * add and remove a peer (HTTP on the configured api_addr, mycelium's JSON
 * shapes). Errors become ControlErrors with mycelium's answer in the message.
 */
import { ControlError, RPC } from "../control/protocol.ts";
import type { MyceliumStatus } from "./discover.ts";

const PEER_RE = /^(tcp|quic):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([1-9]\d{0,4})$/;

/** The `mycelium_*` control methods for an admin API at `apiAddr`. */
export function myceliumAdmin(apiAddr: string | null, status: () => MyceliumStatus | null) {
  const call = async (path: string, init?: RequestInit): Promise<Response> => {
    if (!apiAddr)
      throw new ControlError(RPC.CONFIG_ERROR, "this VM has no [mycelium] in its config");
    try {
      return await fetch(`http://${apiAddr}/api/v1/admin${path}`, {
        ...init,
        signal: AbortSignal.timeout(5000),
      });
    } catch (e) {
      throw new ControlError(
        RPC.INTERNAL,
        `mycelium admin API at ${apiAddr} does not answer: ${(e as Error).message}`,
      );
    }
  };
  const peerParam = (params: unknown): string => {
    const p = Array.isArray(params)
      ? params[0]
      : (params as { endpoint?: unknown } | null)?.endpoint;
    if (typeof p !== "string" || !PEER_RE.test(p)) {
      throw new ControlError(
        RPC.INVALID_PARAMS,
        `invalid peer URI ${JSON.stringify(p)}: use tcp://host:port or quic://[ipv6]:port`,
      );
    }
    return p;
  };
  return async (method: string, params: unknown): Promise<unknown> => {
    switch (method) {
      case "mycelium_status":
        return (
          status() ?? {
            state: "disabled",
            address: null,
            subnet: null,
            reason: "no [mycelium] in the VM config",
          }
        );
      case "mycelium_peers": {
        const r = await call("/peers");
        if (!r.ok) throw new ControlError(RPC.INTERNAL, `mycelium: HTTP ${r.status}`);
        return r.json();
      }
      case "mycelium_addPeer": {
        const endpoint = peerParam(params);
        const r = await call("/peers", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ endpoint }),
        });
        if (r.status === 409)
          throw new ControlError(RPC.INVALID_PARAMS, `peer ${endpoint} already exists`);
        if (!r.ok)
          throw new ControlError(
            RPC.INTERNAL,
            `mycelium refused ${endpoint}: HTTP ${r.status} ${await r.text()}`,
          );
        return null;
      }
      case "mycelium_removePeer": {
        const endpoint = peerParam(params);
        const r = await call(`/peers/${encodeURIComponent(endpoint)}`, { method: "DELETE" });
        if (r.status === 404) throw new ControlError(RPC.INVALID_PARAMS, `no peer ${endpoint}`);
        if (!r.ok) throw new ControlError(RPC.INTERNAL, `mycelium: HTTP ${r.status}`);
        return null;
      }
      default:
        throw new ControlError(RPC.METHOD_NOT_FOUND, `Method not found: ${method}`);
    }
  };
}
