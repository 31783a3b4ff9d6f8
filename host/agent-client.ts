/**
 * The host's client of the guest agent (docs/agent.md): exec with streamed
 * output, file copy both ways keeping mode and mtime, stat, shutdown,
 * status and the job's exit code. It talks HTTP to `http://[addr]:port`
 * (mycelium or loopback) or over Cloud Hypervisor's hybrid vsock (through
 * the local bridge of vsock.ts). Errors are "agent.*" HeroErrors
 * (agentError, lib/agent-protocol.ts) with the HTTP status in
 * detail.status (0 when no answer came) and the agent's message.
 */
import { stat, utimes } from "node:fs/promises";
import {
  API_PREFIX,
  agentError,
  CH_EXIT,
  CH_STDERR,
  CH_STDOUT,
  decodeExit,
  type ExecExit,
  type ExecRequest,
  type Frame,
  FrameDecoder,
  formatMode,
  H_GID,
  H_MODE,
  H_MTIME,
  H_TARGET,
  H_TYPE,
  H_UID,
  type JobExit,
  type PutResult,
  type StatResult,
} from "../lib/agent-protocol.ts";
import { replaceFileAsync } from "../lib/atomic-file.ts";
import type { HeroError } from "../lib/errors.ts";
import { startCidBridge, startVsockBridge, type VsockBridge } from "./vsock.ts";

/** Where the agent is and how to prove who we are. */
export interface AgentClientOptions {
  /** Base URL, e.g. http://[4ab:...]:9998 (mutually exclusive with vsock). */
  url?: string;
  /**
   * Cloud Hypervisor hybrid vsock (the VM's vsock unix socket and the
   * agent's port), or AF_VSOCK to cid:port from a machine with a vsock device.
   */
  vsock?: { socket: string; port: number } | { cid: number; port: number };
  token: string;
}

/** Metadata of a fetched file. */
export interface RemoteFile {
  type: StatResult["type"];
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  /** For a symlink fetched with nofollow. */
  target?: string;
  body: ReadableStream<Uint8Array> | null;
}

/** Options of a file upload. */
export interface PutFileOptions {
  mode?: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  mkdir?: boolean;
}

async function errorOf(res: Response): Promise<HeroError> {
  let msg = `HTTP ${res.status}`;
  try {
    const text = await res.text();
    try {
      const j = JSON.parse(text) as { error?: unknown };
      if (typeof j.error === "string") msg = j.error;
      else if (text) msg = `${msg}: ${text.slice(0, 200)}`;
    } catch {
      if (text) msg = `${msg}: ${text.slice(0, 200)}`;
    }
  } catch {
    // no body
  }
  return agentError(res.status, msg);
}

/** A client of one VM's agent. Call close() when done (stops a vsock bridge). */
export class AgentClient {
  private readonly base: string;
  private bridge: Promise<VsockBridge> | null = null;

  constructor(private readonly o: AgentClientOptions) {
    if (!o.url === !o.vsock) throw new Error("AgentClient needs exactly one of url or vsock");
    if (!o.token) throw new Error("AgentClient needs a token");
    this.base = o.url ? o.url.replace(/\/+$/, "") : "http://vsock";
  }

  /** Sends a request to API_PREFIX + `path`; throws "agent.no-answer" on a transport failure. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.o.token}`);
    const extra: { unix?: string } = {};
    const v = this.o.vsock;
    if (v) {
      this.bridge ??=
        "cid" in v ? startCidBridge(v.cid, v.port) : startVsockBridge(v.socket, v.port);
      extra.unix = (await this.bridge).path;
    }
    try {
      return await fetch(`${this.base}${API_PREFIX}${path}`, { ...init, ...extra, headers });
    } catch (e) {
      const where = v ? `vsock ${"cid" in v ? v.cid : v.socket}:${v.port}` : this.base;
      throw agentError(0, `cannot reach the agent at ${where}: ${(e as Error).message}`);
    }
  }

  private async ok(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await this.request(path, init);
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  /** Runs a command; yields its frames (stdout 1, stderr 2, exit 3 last). */
  async *execFrames(req: ExecRequest, signal?: AbortSignal): AsyncGenerator<Frame> {
    const res = await this.ok("/exec", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(req),
      signal,
    });
    if (!res.body) throw agentError(res.status, "exec: empty answer", "protocol");
    const dec = new FrameDecoder();
    let sawExit = false;
    for await (const chunk of res.body) {
      for (const f of dec.push(chunk)) {
        if (f.channel === CH_EXIT) sawExit = true;
        yield f;
      }
    }
    if (!sawExit || dec.pending > 0)
      throw agentError(
        0,
        "exec: the stream ended before the exit code (connection lost?)",
        "protocol",
      );
  }

  /** Runs a command, handing output to the callbacks; resolves with how it ended. */
  async exec(
    req: ExecRequest,
    on: {
      stdout?: (b: Uint8Array) => void | Promise<void>;
      stderr?: (b: Uint8Array) => void | Promise<void>;
      signal?: AbortSignal;
    } = {},
  ): Promise<ExecExit> {
    let exit: ExecExit | null = null;
    for await (const f of this.execFrames(req, on.signal)) {
      if (f.channel === CH_STDOUT) await on.stdout?.(f.payload);
      else if (f.channel === CH_STDERR) await on.stderr?.(f.payload);
      else if (f.channel === CH_EXIT) exit = decodeExit(f.payload);
    }
    if (!exit) throw agentError(0, "exec: no exit code", "protocol");
    return exit;
  }

  /** Uploads bytes to `remote` (atomic on the VM side). */
  async putFile(
    remote: string,
    body: Bun.BodyInit | null,
    o: PutFileOptions = {},
  ): Promise<PutResult> {
    const q = new URLSearchParams({ path: remote });
    if (o.mode !== undefined) q.set("mode", formatMode(o.mode));
    if (o.mtime !== undefined) q.set("mtime", String(o.mtime));
    if (o.uid !== undefined) q.set("uid", String(o.uid));
    if (o.gid !== undefined) q.set("gid", String(o.gid));
    if (o.mkdir) q.set("mkdir", "1");
    const res = await this.ok(`/files?${q}`, { method: "PUT", body: body ?? new Uint8Array(0) });
    return (await res.json()) as PutResult;
  }

  /** Creates a symlink on the VM. */
  async putSymlink(remote: string, target: string, o: PutFileOptions = {}): Promise<StatResult> {
    const q = new URLSearchParams({ path: remote, symlink: target });
    if (o.mtime !== undefined) q.set("mtime", String(o.mtime));
    if (o.mkdir) q.set("mkdir", "1");
    const res = await this.ok(`/files?${q}`, { method: "PUT", body: new Uint8Array(0) });
    return (await res.json()) as StatResult;
  }

  /** Fetches a file (body streamed) with its metadata. */
  async getFile(remote: string, o: { nofollow?: boolean } = {}): Promise<RemoteFile> {
    const q = new URLSearchParams({ path: remote });
    if (o.nofollow) q.set("nofollow", "1");
    const res = await this.ok(`/files?${q}`);
    const h = res.headers;
    const out: RemoteFile = {
      type: (h.get(H_TYPE) ?? "file") as StatResult["type"],
      mode: Number.parseInt(h.get(H_MODE) ?? "644", 8),
      mtime: Number(h.get(H_MTIME) ?? "0"),
      uid: Number(h.get(H_UID) ?? "0"),
      gid: Number(h.get(H_GID) ?? "0"),
      body: res.body,
    };
    const t = h.get(H_TARGET);
    if (t !== null) out.target = decodeURIComponent(t);
    return out;
  }

  /** Copies a local file to the VM keeping its mode and mtime. */
  async copyTo(local: string, remote: string, o: { mkdir?: boolean } = {}): Promise<PutResult> {
    const st = await stat(local);
    if (!st.isFile()) throw agentError(0, `${local} is not a regular file`, "not-regular");
    return this.putFile(remote, Bun.file(local), {
      mode: st.mode & 0o7777,
      mtime: st.mtimeMs / 1000,
      mkdir: o.mkdir,
    });
  }

  /** Copies a VM file to `local` (atomically) keeping its mode and mtime; returns the size. */
  async copyFrom(
    remote: string,
    local: string,
  ): Promise<{ size: number; mode: string; mtime: number }> {
    const f = await this.getFile(remote);
    let size = 0;
    await replaceFileAsync(
      local,
      async (tmp) => {
        size = await Bun.write(tmp, new Response(f.body));
        await utimes(tmp, f.mtime, f.mtime);
      },
      { mode: f.mode },
    );
    return { size, mode: formatMode(f.mode), mtime: f.mtime };
  }

  /** stat (lstat unless follow) of a VM path. */
  async stat(remote: string, follow = false): Promise<StatResult> {
    const q = new URLSearchParams({ path: remote });
    if (follow) q.set("follow", "1");
    return (await (await this.ok(`/stat?${q}`)).json()) as StatResult;
  }

  /** Asks the VM to power off or reboot (graceful). */
  async shutdown(kind: "poweroff" | "reboot" = "poweroff"): Promise<void> {
    await this.ok("/shutdown", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind }),
    });
  }

  /** The VM's status (services, versions; shape set by PID 1). */
  async status(): Promise<unknown> {
    return (await this.ok("/status")).json();
  }

  /** Waits up to `timeoutMs` for the job's exit; null if it has not ended by then. */
  async waitExit(timeoutMs: number): Promise<JobExit | null> {
    const res = await this.ok(`/wait-exit?timeout_ms=${Math.max(0, Math.floor(timeoutMs))}`);
    if (res.status === 204) return null;
    return (await res.json()) as JobExit;
  }

  /** Releases the vsock bridge, if any. */
  close(): void {
    this.bridge?.then((b) => b.close()).catch(() => {});
    this.bridge = null;
  }
}
