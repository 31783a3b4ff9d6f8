/**
 * Host side of Cloud Hypervisor's hybrid vsock: the VM's vsock device is a
 * unix socket on the host; a client connects to it, sends `CONNECT <port>\n`
 * and reads `OK <host-port>\n`, after which the stream is connected to the
 * guest's AF_VSOCK listener on <port>. HTTP then flows over that stream.
 *
 * So that Bun's own fetch (chunked bodies, streaming, keep-alive) can be
 * used unchanged, `startVsockBridge` listens on a private unix socket and,
 * for each connection fetch makes to it, opens a hybrid-vsock stream with
 * the handshake and pipes both ways (node:net pipes, so with backpressure).
 * The guest side (listening on AF_VSOCK) is not implemented: see docs/agent.md.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vsockConnectFd } from "../sys/ffi.ts";
import { link, newSide, type SpliceSide, spliceHandlers } from "../sys/splice.ts";

/** Pure: parses the handshake answer line (without or with its newline). */
export function parseOkLine(
  line: string,
): { ok: true; hostPort: number } | { ok: false; error: string } {
  const l = line.replace(/\r?\n$/, "");
  const m = /^OK (\d{1,10})$/.exec(l);
  if (m) return { ok: true, hostPort: Number(m[1]) };
  return {
    ok: false,
    error:
      l === ""
        ? "the vsock socket closed without answering CONNECT (is the guest listening on that port?)"
        : `unexpected vsock handshake answer ${JSON.stringify(l.slice(0, 80))} (expected "OK <port>")`,
  };
}

/** Validates a vsock port number. */
export function checkVsockPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 0xffffffff)
    throw new Error(`invalid vsock port ${port}`);
}

/**
 * Connects to the hybrid vsock unix socket and performs the handshake.
 * Resolves with the connected socket (any bytes that came after the OK
 * line are unshifted back into it) or rejects with a clear message.
 */
export function vsockConnect(
  socketPath: string,
  port: number,
  timeoutMs = 10_000,
): Promise<net.Socket> {
  checkVsockPort(port);
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path: socketPath });
    let buf = Buffer.alloc(0);
    let settled = false;
    const fail = (msg: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(new Error(`vsock ${socketPath} port ${port}: ${msg}`));
    };
    const timer = setTimeout(() => fail("no answer to CONNECT within the timeout"), timeoutMs);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.byteLength > 256) fail("handshake answer too long");
        return;
      }
      const r = parseOkLine(buf.subarray(0, nl + 1).toString("latin1"));
      if (!r.ok) return fail(r.error);
      settled = true;
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("error", onError);
      sock.off("end", onEnd);
      sock.pause();
      const rest = buf.subarray(nl + 1);
      if (rest.byteLength > 0) sock.unshift(rest);
      resolve(sock);
    };
    const onError = (e: Error) => fail(e.message);
    const onEnd = () =>
      fail(parseOkLine(buf.toString("latin1")).ok ? "closed" : "closed during the handshake");
    sock.on("connect", () => sock.write(`CONNECT ${port}\n`));
    sock.on("data", onData);
    sock.on("error", onError);
    sock.on("end", onEnd);
  });
}

/** A local unix socket whose connections are forwarded over hybrid vsock. */
export interface VsockBridge {
  /** Path for fetch's `unix` option. */
  path: string;
  close(): void;
}

/** Starts a bridge; close it when done (it removes its private directory). */
export async function startVsockBridge(socketPath: string, port: number): Promise<VsockBridge> {
  checkVsockPort(port);
  const dir = mkdtempSync(join(tmpdir(), "hero-agent-vsock-"));
  const path = join(dir, "bridge.sock");
  const server = net.createServer((local) => {
    local.pause();
    vsockConnect(socketPath, port).then(
      (remote) => {
        local.pipe(remote);
        remote.pipe(local);
        local.resume();
        remote.resume();
        const end = () => {
          local.destroy();
          remote.destroy();
        };
        local.on("error", end);
        remote.on("error", end);
        local.on("close", end);
        remote.on("close", end);
      },
      (e: Error) => {
        // fetch sees a plain HTTP answer explaining the failure.
        const body = JSON.stringify({ error: e.message });
        local.end(
          `HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    close() {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A local unix socket whose connections are spliced to an AF_VSOCK
 * connection to cid:port (a machine with a vsock device: the host with
 * vhost-vsock, or a guest reaching itself through CID 1 with the loopback
 * transport, as the QEMU test does).
 */
export async function startCidBridge(cid: number, port: number): Promise<VsockBridge> {
  checkVsockPort(port);
  const dir = mkdtempSync(join(tmpdir(), "hero-agent-vsock-"));
  const path = join(dir, "bridge.sock");
  const server = Bun.listen<SpliceSide>({
    unix: path,
    data: newSide(),
    socket: {
      ...spliceHandlers,
      open(local) {
        local.data = newSide();
        void (async () => {
          try {
            const fd = vsockConnectFd(cid, port);
            const remote = await Bun.connect<SpliceSide>({
              fd,
              socket: spliceHandlers,
              data: newSide(),
            } as unknown as Bun.UnixSocketOptions<SpliceSide>);
            link(local, remote);
          } catch (e) {
            const body = JSON.stringify({ error: `vsock ${cid}:${port}: ${(e as Error).message}` });
            local.end(
              `HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
            );
          }
        })();
      },
    },
  });
  return {
    path,
    close() {
      server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
