/**
 * Shell-like word splitting for `exec:` and `test:` lines, as zinit does
 * (shlex): whitespace separates words, single quotes are literal, double
 * quotes allow \" \\ \$ \` escapes, a backslash outside quotes escapes the
 * next character. No expansion, no pipes: there is no shell. Pure.
 */

/** Splits a command line into argv; throws on an unterminated quote or trailing backslash. */
export function shellSplit(line: string): string[] {
  const out: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const ch = line[i] as string;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated single quote at column ${i + 1}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = line[i] as string;
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === "\\" && i + 1 < n && '"\\$`\n'.includes(line[i + 1] as string)) {
          word += line[i + 1];
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
      if (!closed) throw new Error("unterminated double quote");
      inWord = true;
    } else if (ch === "\\") {
      if (i + 1 >= n) throw new Error("trailing backslash");
      word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(word);
      word = "";
      inWord = false;
      i++;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) out.push(word);
  return out;
}
