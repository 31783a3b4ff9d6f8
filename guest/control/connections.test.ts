import { describe, expect, test } from "bun:test";
import {
  Connections,
  type ControlSocket,
  controlCounters,
  MAX_CONNECTIONS,
  refusalLine,
} from "./connections.ts";
import { MAX_REQUEST, TOO_LONG_LINE } from "./framing.ts";

/** A socket whose kernel takes `room` bytes per write (Infinity: all). */
function fakeSocket(room = Number.POSITIVE_INFINITY) {
  const events: string[] = [];
  let written = "";
  const s = {
    data: undefined as unknown,
    room,
    write(x: string | Uint8Array) {
      const bytes = typeof x === "string" ? Buffer.from(x) : Buffer.from(x);
      const n = Math.min(bytes.length, s.room);
      written += bytes.subarray(0, n).toString();
      return n;
    },
    shutdown: () => events.push("shutdown"),
    timeout: (t: number) => events.push(`timeout ${t}`),
    terminate: () => events.push("terminate"),
    pause: () => events.push("pause"),
    resume: () => events.push("resume"),
  };
  return { s, sock: s as unknown as ControlSocket, events, written: () => written };
}

describe("refusalLine", () => {
  test("one line both protocols read as an error", () => {
    const l = refusalLine(512);
    expect(l.endsWith("}\n")).toBe(true);
    const msg = `too many connections: 512 open (limit ${MAX_CONNECTIONS}); try again later`;
    expect(JSON.parse(l)).toEqual({
      state: "error",
      body: msg,
      jsonrpc: "2.0",
      id: null,
      error: { code: -32603, message: msg },
    });
  });
});

describe("Connections", () => {
  test("beyond MAX_CONNECTIONS the peer gets the refusal, then EOF; a released slot comes back", () => {
    const conns = new Connections();
    const open = Array.from({ length: MAX_CONNECTIONS }, () => fakeSocket());
    for (const f of open) conns.accept(f.sock);
    const refusedBefore = controlCounters.refused;
    const extra = fakeSocket();
    conns.accept(extra.sock);
    expect(extra.written()).toBe(refusalLine(MAX_CONNECTIONS));
    expect(extra.events).toEqual(["shutdown", "timeout 5"]);
    expect(controlCounters.refused).toBe(refusedBefore + 1);
    conns.closed(open[0]?.sock as ControlSocket);
    const next = fakeSocket();
    conns.accept(next.sock);
    expect(next.written()).toBe("");
    expect(next.sock.data.counted).toBe(true);
  });

  test("requests: whole lines wait in order; a line over MAX_REQUEST is answered and the connection ends", () => {
    const conns = new Connections();
    const f = fakeSocket();
    conns.accept(f.sock);
    expect(conns.receive(f.sock, "list\nstat")).toBe(true);
    expect(conns.receive(f.sock, "us web\r\n")).toBe(true);
    expect([conns.nextLine(f.sock), conns.nextLine(f.sock)]).toEqual(["list", "status web"]);
    expect(conns.receive(f.sock, "x".repeat(MAX_REQUEST + 1))).toBe(false);
    expect(f.written()).toBe(TOO_LONG_LINE);
    expect(f.sock.data).toMatchObject({ closed: true, buf: "", lines: [] });
    expect(f.events).toEqual(["shutdown", "timeout 5"]);
  });

  test("a JSON message whose brackets never balance is bounded the same way; blanks between messages are not kept", () => {
    const conns = new Connections();
    const f = fakeSocket();
    conns.accept(f.sock);
    expect(conns.receive(f.sock, `{}${" \n".repeat(MAX_REQUEST)}`)).toBe(true);
    expect(f.sock.data.buf).toBe("");
    expect(conns.nextLine(f.sock)).toBe("{}");
    expect(conns.receive(f.sock, "[")).toBe(true);
    for (let i = 0; i < 20; i++) if (!conns.receive(f.sock, "[1,".repeat(MAX_REQUEST / 48))) break;
    expect(f.written()).toBe(TOO_LONG_LINE);
    expect(f.sock.data).toMatchObject({ closed: true, buf: "", lines: [] });
  });

  test("answers the kernel does not take wait and pause reading; once written, reading resumes", () => {
    const conns = new Connections();
    const f = fakeSocket(3);
    conns.accept(f.sock);
    conns.write(f.sock, "hello\n");
    expect(f.written()).toBe("hel");
    expect(f.sock.data.outBytes).toBe(3);
    expect(f.events).toEqual(["pause"]);
    conns.write(f.sock, "more\n");
    f.s.room = Number.POSITIVE_INFINITY;
    conns.flush(f.sock);
    conns.maybeResume(f.sock);
    expect(f.written()).toBe("hello\nmore\n");
    expect(f.sock.data.outBytes).toBe(0);
    expect(f.events).toEqual(["pause", "resume"]);
  });

  test("a client that reads nothing is dropped past 4 MiB of waiting answers", () => {
    const conns = new Connections();
    const f = fakeSocket(0);
    conns.accept(f.sock);
    const dropped = controlCounters.dropped;
    conns.write(f.sock, "x".repeat(4 * 1024 * 1024));
    expect(f.sock.data.closed).toBe(false);
    conns.write(f.sock, "y");
    expect(f.sock.data.closed).toBe(true);
    expect(f.events).toEqual(["pause", "terminate"]);
    expect(controlCounters.dropped).toBe(dropped + 1);
  });

  test("finish waits for the answers to be written, then lingers", () => {
    const conns = new Connections();
    const f = fakeSocket(2);
    conns.accept(f.sock);
    conns.write(f.sock, "ok\n");
    conns.finish(f.sock);
    expect(f.events).toEqual(["pause"]);
    f.s.room = Number.POSITIVE_INFINITY;
    conns.flush(f.sock);
    conns.finish(f.sock);
    expect(f.written()).toBe("ok\n");
    expect(f.events).toEqual(["pause", "shutdown", "timeout 5"]);
  });
});
