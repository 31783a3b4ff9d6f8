import { describe, expect, test } from "bun:test";
import { parseCurl } from "./mycelium-node.ts";

describe("curl output", () => {
  test("status, the last header block and the body", () => {
    const out =
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: hero_session=ab; HttpOnly\r\nContent-Type: application/json\r\n\r\n{"ok":true}\n200';
    expect(parseCurl(out)).toEqual({
      status: 200,
      headers: { "set-cookie": "hero_session=ab; HttpOnly", "content-type": "application/json" },
      body: '{"ok":true}',
    });
  });
  test("no answer: status 0, nothing else", () => {
    expect(parseCurl("\n000")).toEqual({ status: 0, headers: {}, body: "" });
  });
});
