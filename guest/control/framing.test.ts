import { describe, expect, test } from "bun:test";
import {
  type FrameState,
  MAX_REQUEST,
  newFrameState,
  TOO_LONG_LINE,
  takeMessages,
} from "./framing.ts";

/** Feeds `chunks` one after another, as reads would bring them; every message taken, and the rest. */
function feed(chunks: string[], st: FrameState = newFrameState()) {
  const messages: string[] = [];
  let buf = "";
  for (const c of chunks) {
    const r = takeMessages(buf + c, st);
    messages.push(...r.messages);
    buf = r.rest;
  }
  return { messages, rest: buf, st };
}

describe("legacy lines", () => {
  test("whole lines without their \\n or \\r\\n, later blank ones skipped, the unfinished rest kept", () => {
    expect(feed(["list\r\n\n  \nstatus web\nsta"])).toMatchObject({
      messages: ["list", "status web"],
      rest: "sta",
    });
    expect(feed(["no newline yet"])).toMatchObject({ messages: [], rest: "no newline yet" });
    expect(feed(["a\n"])).toMatchObject({ messages: ["a"], rest: "" });
    // Leading blanks go, and only a \r right before the newline (the protocols split the rest).
    expect(feed([" a\r\r\n"])).toMatchObject({ messages: ["a\r"], rest: "" });
  });

  test("a blank first line is a (legacy) message; blank lines after a message are not", () => {
    expect(feed(["\nlist\n"]).messages).toEqual(["", "list"]);
    expect(feed(["  \r\n"]).messages).toEqual([""]);
    expect(feed(["list\n\n\n"]).messages).toEqual(["list"]);
  });

  test("a line with braces inside is still a line", () => {
    expect(feed(['status {"x"}\n']).messages).toEqual(['status {"x"}']);
  });
});

describe("JSON-RPC messages (reth-ipc framing)", () => {
  const a = '{"jsonrpc":"2.0","id":1,"method":"service_list"}';
  const b = '{"jsonrpc":"2.0","id":2,"method":"service_status","params":["a}b\\"]"]}';

  test("end where the brackets balance: no newline needed, back to back, newlines between are blanks", () => {
    expect(feed([a]).messages).toEqual([a]);
    expect(feed([a + b]).messages).toEqual([a, b]);
    expect(feed([`${a}\n\n${b}\n`]).messages).toEqual([a, b]);
    expect(feed([`[${a},${b}]`]).messages).toEqual([`[${a},${b}]`]);
    const pretty = JSON.stringify(JSON.parse(b), null, 2);
    expect(feed([pretty]).messages).toEqual([pretty]);
  });

  test("split anywhere across reads, the same messages", () => {
    const text = `${a}${b}\n${a}`;
    for (let cut = 0; cut <= text.length; cut++) {
      const r = feed([text.slice(0, cut), text.slice(cut)]);
      expect(r.messages).toEqual([a, b, a]);
      expect(r.rest).toBe("");
    }
    // One character per read: the scan resumes, it does not start over.
    expect(feed([...text]).messages).toEqual([a, b, a]);
  });

  test("an unfinished message waits; what cannot become JSON ends at the newline", () => {
    expect(feed(['{"jsonrpc":"2.0",\n"id":1,'])).toMatchObject({ messages: [] });
    expect(feed(["{not json\nlist\n"]).messages).toEqual(["{not json", "list"]);
    expect(feed(['{"a":"b\n', "list\n"]).messages).toEqual(['{"a":"b', "list"]);
    expect(feed(["{nope}"]).messages).toEqual(["{nope}"]);
  });

  test("a legacy line after a JSON message, and a JSON message after a legacy line", () => {
    expect(feed([`${a}list\n${a}`]).messages).toEqual([a, "list", a]);
  });
});

test("the too-long answer is one legacy error line naming the limit", () => {
  expect(JSON.parse(TOO_LONG_LINE)).toEqual({
    state: "error",
    body: `request longer than ${MAX_REQUEST} bytes`,
  });
  expect(TOO_LONG_LINE.endsWith("}\n")).toBe(true);
});

describe("fuzz", () => {
  test("random input in random pieces: never throws, the same messages as in one piece, the scan within the rest", () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = [
      "{",
      "}",
      "[",
      "]",
      '"',
      "\\",
      " ",
      "\n",
      "\r",
      "a",
      "1",
      ",",
      ":",
      "l",
      "\0",
      "é",
    ];
    for (let round = 0; round < 2000; round++) {
      const text = Array.from({ length: rnd(80) }, () => alphabet[rnd(alphabet.length)]).join("");
      const whole = feed([text]);
      const pieces: string[] = [];
      for (let at = 0; at < text.length; ) {
        const n = 1 + rnd(8);
        pieces.push(text.slice(at, at + n));
        at += n;
      }
      const split = feed(pieces);
      expect(split.messages).toEqual(whole.messages);
      expect(split.rest).toBe(whole.rest);
      expect(split.st.cursor).toBeLessThanOrEqual(split.rest.length);
      // Nothing is made up: every message is a piece of the input.
      for (const m of split.messages) expect(text.includes(m)).toBe(true);
    }
  });
});
