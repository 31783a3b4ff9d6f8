/**
 * Request framing on the control socket, pure. Two kinds of message share
 * a connection, told apart by their first character (blanks between
 * messages are skipped):
 * - `{` or `[`: a JSON-RPC request, ended where its brackets balance
 *   (outside strings), as zinit's reth-ipc server finds it: zinit's own
 *   client sends no newline, and may send requests back to back. A newline
 *   after it is a blank like any other. A message holding a character JSON
 *   never has outside a string (or a newline inside one) cannot become
 *   JSON: it ends at the next newline and is answered Parse error (reth-ipc
 *   would wait for its brackets to balance);
 * - anything else: a legacy command line, ended by `\n` (a `\r` before it
 *   is dropped). A blank line first on a connection is a legacy command
 *   too (zinit answers it `unknown command`).
 * The scan resumes where it stopped, so a message arriving in pieces is
 * read once.
 */

/** Longest request accepted (one message, from its first character). */
export const MAX_REQUEST = 1024 * 1024;

/** Where the scan of a connection's input stands (kept between reads). */
export interface FrameState {
  /** Characters of the unfinished rest already scanned. */
  cursor: number;
  /** The message being read: "json", "line", or none yet (between messages). */
  kind: "" | "json" | "line";
  /** Brackets open in a JSON message. */
  depth: number;
  inString: boolean;
  escaped: boolean;
  /** The JSON message cannot become JSON: it ends at the next newline. */
  broken: boolean;
  /** A message was taken on this connection (later blank lines are skipped). */
  started: boolean;
}

/** The state of a new connection. */
export function newFrameState(): FrameState {
  return {
    cursor: 0,
    kind: "",
    depth: 0,
    inString: false,
    escaped: false,
    broken: false,
    started: false,
  };
}

const NL = 10;
const CR = 13;
const isBlank = (c: number) => c === 32 || c === 9 || c === NL || c === CR;
/** Characters JSON has outside strings: blanks, punctuation, numbers, true/false/null. */
const JSON_OUTSIDE = new Set(
  [...'{}[]:,"0123456789-+.eEtruefalsn \t\r\n'].map((c) => c.charCodeAt(0)),
);

/** Pure: one character of a JSON message; true when the message ends with it. */
function scanJson(st: FrameState, c: number): boolean {
  if (st.inString) {
    if (st.escaped) st.escaped = false;
    else if (c === 92) st.escaped = true;
    else if (c === 34) st.inString = false;
    else if (c === NL) st.broken = true;
  } else if (c === 123 || c === 91) st.depth++;
  else if (c === 125 || c === 93) st.depth--;
  else if (c === 34) st.inString = true;
  else if (!JSON_OUTSIDE.has(c)) st.broken = true;
  if (!st.inString && st.depth === 0) return true;
  return st.broken && c === NL;
}

function endMessage(st: FrameState): void {
  st.kind = "";
  st.depth = 0;
  st.inString = false;
  st.escaped = false;
  st.broken = false;
  st.started = true;
}

/**
 * Pure (advances `st`): the whole messages at the start of `buf` (the
 * unfinished rest of the last call, then new input), and the start of the
 * next one, not yet ended. A legacy line comes without its newline; a
 * blank first line as "".
 */
export function takeMessages(buf: string, st: FrameState): { messages: string[]; rest: string } {
  const messages: string[] = [];
  let start = 0;
  let i = st.cursor;
  while (i < buf.length) {
    if (st.kind === "") {
      const c = buf.charCodeAt(i);
      if (isBlank(c)) {
        if (c === NL && !st.started) {
          messages.push("");
          endMessage(st);
        }
        start = ++i;
        continue;
      }
      start = i;
      st.kind = c === 123 || c === 91 ? "json" : "line";
    }
    if (st.kind === "line") {
      const nl = buf.indexOf("\n", i);
      if (nl < 0) {
        i = buf.length;
        break;
      }
      messages.push(buf.slice(start, buf.charCodeAt(nl - 1) === CR ? nl - 1 : nl));
      endMessage(st);
      start = i = nl + 1;
      continue;
    }
    const c = buf.charCodeAt(i);
    if (scanJson(st, c)) {
      messages.push(buf.slice(start, c === NL ? i : i + 1));
      endMessage(st);
      start = i + 1;
    }
    i++;
  }
  st.cursor = i - start;
  return { messages, rest: buf.slice(start) };
}

/** The answer to a message longer than MAX_REQUEST (then the connection closes). */
export const TOO_LONG_LINE = `${JSON.stringify({ state: "error", body: `request longer than ${MAX_REQUEST} bytes` })}\n`;
