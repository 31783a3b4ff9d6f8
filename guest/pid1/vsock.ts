/**
 * The guest agent over vsock, the channel a hypervisor gives before any
 * network exists: an AF_VSOCK listener on the agent's port (any CID), whose
 * every connection is spliced to the agent's private unix socket
 * (/run/hero-init/agent.sock, 0600). The token is still required: vsock only
 * replaces the address check (only the host and this VM can reach a vsock
 * port). Accepting polls a non-blocking socket every 25 ms: Bun cannot watch
 * a raw descriptor for readability, and an accept syscall per tick is cheap.
 */

import { log } from "../../lib/log.ts";
import { acceptNonBlocking, vsockListen } from "../../sys/ffi.ts";
import { link, newSide, type SpliceSide, spliceHandlers } from "../../sys/splice.ts";

/** Opens the AF_VSOCK listener; null (logged) when this VM has no vsock transport. */
export function openVsockListener(port: number): number | null {
  try {
    const fd = vsockListen(port);
    log.info("agent", `listening on vsock port ${port}`);
    return fd;
  } catch (e) {
    log.info(
      "agent",
      `no vsock listener: ${(e as Error).message} (load the vsock transport module)`,
    );
    return null;
  }
}

/** Accepts on the listener `fd` and splices each connection to `agentSocket`; returns a stop function. */
export function spliceVsockTo(fd: number, agentSocket: string): () => void {
  const timer = setInterval(() => {
    for (;;) {
      let c: number | null;
      try {
        c = acceptNonBlocking(fd);
      } catch (e) {
        log.warn("agent", `vsock accept: ${(e as Error).message}`);
        return;
      }
      if (c === null) return;
      void splice(c, agentSocket);
    }
  }, 25);
  return () => clearInterval(timer);
}

async function splice(fd: number, agentSocket: string): Promise<void> {
  try {
    // Bun.connect({fd}) wraps an existing descriptor; bun-types only declares it as FdSocketOptions
    // without a connect overload, hence the cast.
    const down = await Bun.connect<SpliceSide>({
      fd,
      socket: spliceHandlers,
      data: newSide(),
    } as unknown as Bun.UnixSocketOptions<SpliceSide>);
    try {
      const up = await Bun.connect<SpliceSide>({
        unix: agentSocket,
        socket: spliceHandlers,
        data: newSide(),
      });
      link(down, up);
    } catch (e) {
      log.warn("agent", `vsock: the agent's socket does not answer: ${(e as Error).message}`);
      down.end();
    }
  } catch (e) {
    log.warn("agent", `vsock connection: ${(e as Error).message}`);
  }
}
