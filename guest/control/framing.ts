/**
 * Request framing on the control socket, pure: a request is one line ended
 * by `\n` (a `\r` before it is dropped); blank lines are skipped.
 */

/** Longest request line accepted. */
export const MAX_REQUEST = 1024 * 1024;

/**
 * Pure: the whole non-blank lines of `buf` (without their `\r\n`/`\n`) and
 * the start of the next line, not yet ended.
 */
export function splitLines(buf: string): { lines: string[]; rest: string } {
  const lines: string[] = [];
  let start = 0;
  let nl = buf.indexOf("\n");
  while (nl >= 0) {
    const line = buf.slice(start, nl).replace(/\r$/, "");
    if (line.trim()) lines.push(line);
    start = nl + 1;
    nl = buf.indexOf("\n", start);
  }
  return { lines, rest: buf.slice(start) };
}

/** The answer to a line longer than MAX_REQUEST (then the connection closes). */
export const TOO_LONG_LINE = `${JSON.stringify({ state: "error", body: `request longer than ${MAX_REQUEST} bytes` })}\n`;
