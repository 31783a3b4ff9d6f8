import { describe, expect, test } from "bun:test";
import { createRing } from "../supervisor/logs.ts";
import { Connections, type ControlSocket } from "./connections.ts";
import { prefixOf, startFollow } from "./followers.ts";

/** A socket whose kernel takes everything; what was written and whether it was shut down. */
function fakeSocket() {
  const got = { text: "", shutdown: false };
  const s = {
    data: undefined,
    write: (x: string | Uint8Array) => {
      got.text += typeof x === "string" ? x : Buffer.from(x).toString();
      return typeof x === "string" ? Buffer.byteLength(x) : x.length;
    },
    shutdown: () => {
      got.shutdown = true;
    },
    timeout: () => {},
    pause: () => {},
    resume: () => {},
    terminate: () => {},
  };
  return { sock: s as unknown as ControlSocket, got };
}

describe("prefixOf", () => {
  test("zinit's plain-line prefix: [+] for stdout, [-] for stderr", () => {
    expect(prefixOf({ seq: 1, time: 0, service: "web", stream: "stdout", text: "x" })).toBe(
      "[+] web: ",
    );
    expect(prefixOf({ seq: 2, time: 0, service: "web", stream: "stderr", text: "x" })).toBe(
      "[-] web: ",
    );
  });
});

describe("followers", () => {
  test("`log snapshot web`: that service's lines as plain lines, then the connection ends", () => {
    const ring = createRing(10);
    ring.push("web", "stdout", "one");
    ring.push("db", "stdout", "other");
    ring.push("web", "stderr", "two");
    const conns = new Connections();
    const { sock, got } = fakeSocket();
    conns.accept(sock);
    startFollow(conns, ring, sock, { name: "web", id: null, history: true, live: false });
    expect(got.text).toBe("[+] web: one\n[-] web: two\n");
    expect(got.shutdown).toBe(true);
    expect(conns.followers).toBe(0);
  });

  test("a subscription gets new lines as notifications, and stays open", () => {
    const ring = createRing(10);
    ring.push("web", "stdout", "old");
    const conns = new Connections();
    const { sock, got } = fakeSocket();
    conns.accept(sock);
    startFollow(conns, ring, sock, { name: undefined, id: 4, history: false, live: true });
    expect(got.text).toBe("");
    ring.push("web", "stdout", "new");
    const n = JSON.parse(got.text);
    expect(n).toMatchObject({ jsonrpc: "2.0", method: "stream_subscribeLogs" });
    expect(n.params.subscription).toBe(4);
    expect(n.params.result).toContain("new");
    expect(got.shutdown).toBe(false);
    expect(conns.followers).toBe(1);
    conns.closed(sock);
    expect(conns.followers).toBe(0);
  });
});
