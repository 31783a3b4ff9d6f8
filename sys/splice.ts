/**
 * Joins two Bun sockets byte for byte (both directions), for the vsock
 * paths of the agent: in the guest, an accepted AF_VSOCK connection ↔ the
 * agent's private unix socket; in the CLI, a local unix connection ↔ an
 * AF_VSOCK connection. Bun wraps a raw descriptor with `Bun.connect({fd})`;
 * node:net's `new Socket({fd})` did not move data for a socket descriptor
 * in Bun 1.4 (tried), hence these handlers.
 *
 * Bytes read before the other side exists are kept and sent once it does;
 * writes that do not fit are queued and flushed on `drain`; when one side
 * closes, the other ends after its queue is flushed.
 */
import type { Socket, SocketHandler } from "bun";

/** Per-socket state of a splice. */
export interface SpliceSide {
  peer: Socket<SpliceSide> | null;
  /** Bytes waiting to be written to this socket. */
  queue: Uint8Array[];
  /** Bytes read from this socket before its peer was linked. */
  early: Uint8Array[];
  /** The peer closed: end this socket once its queue is empty. */
  closing: boolean;
}

/** A fresh side (the `data` of Bun.connect / Bun.listen). */
export const newSide = (): SpliceSide => ({ peer: null, queue: [], early: [], closing: false });

function flush(s: Socket<SpliceSide>): void {
  const q = s.data.queue;
  while (q.length) {
    const chunk = q[0] as Uint8Array;
    const n = s.write(chunk);
    if (n < chunk.length) {
      q[0] = chunk.subarray(Math.max(n, 0));
      return;
    }
    q.shift();
  }
  if (s.data.closing) s.end();
}

function passOn(s: Socket<SpliceSide>): void {
  const p = s.data.peer;
  if (!p) return;
  p.data.closing = true;
  flush(p);
}

/** Socket handlers for both sides of a splice. */
export const spliceHandlers: SocketHandler<SpliceSide> = {
  data(s, d) {
    const p = s.data.peer;
    if (!p) {
      s.data.early.push(new Uint8Array(d));
      return;
    }
    p.data.queue.push(new Uint8Array(d));
    flush(p);
  },
  drain(s) {
    flush(s);
  },
  end(s) {
    passOn(s);
  },
  close(s) {
    passOn(s);
  },
  error(s) {
    passOn(s);
  },
};

/** Links two connected sockets (each created with spliceHandlers and newSide()). */
export function link(a: Socket<SpliceSide>, b: Socket<SpliceSide>): void {
  a.data.peer = b;
  b.data.peer = a;
  b.data.queue.push(...a.data.early.splice(0));
  a.data.queue.push(...b.data.early.splice(0));
  flush(a);
  flush(b);
}
