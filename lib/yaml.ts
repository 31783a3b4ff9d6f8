/**
 * Duplicate mapping keys in YAML text, pure. Bun.YAML.parse keeps the last
 * of two equal keys without a word, so `exec: a` then `exec: b` runs b; this
 * scanner finds such keys, with their lines, for every block and flow
 * mapping. It reads text that Bun.YAML has already accepted (the caller
 * parses first), so it only has to follow valid YAML's structure:
 * indentation, `- ` entries, flow collections, quoted and block scalars,
 * comments, anchors, tags and documents. Keys compare as Bun makes them
 * (`1`, `01` and `"1"` are one key). Explicit keys (`? `) and collections or
 * aliases used as keys cannot be checked and are reported as unsupported.
 */

/** A key given twice in one mapping. */
export interface DuplicateKey {
  kind: "duplicate";
  key: string;
  /** 1-based line of the second occurrence and of the first. */
  line: number;
  firstLine: number;
  /** Keys leading to the mapping (for the error's field). */
  path: string[];
}

/** A construct the scanner cannot check. */
export interface UnsupportedKey {
  kind: "unsupported";
  what: string;
  line: number;
}

interface Block {
  kind: "map" | "seq";
  indent: number;
  keys: Map<string, number>;
  path: string[];
  last?: string;
}

interface Flow {
  map: boolean;
  keys: Map<string, number>;
  expectKey: boolean;
  path: string[];
  last?: string;
}

class Found {
  constructor(readonly result: DuplicateKey | UnsupportedKey) {}
}

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const SPECIAL_WORD = /^(?:true|false|null|yes|no|on|off|y|n)$/i;

/** A key's source text → the property name Bun.YAML gives it. */
export function keyName(source: string): string {
  const s = source.trim();
  if (SIMPLE_KEY.test(s) && !SPECIAL_WORD.test(s)) return s;
  try {
    const v = Bun.YAML.parse(s);
    if (v === null || typeof v !== "object") return String(v);
  } catch {
    // not a scalar on its own: compare the text as written
  }
  return s;
}

const isBlank = (ch: string | undefined) => ch === " " || ch === "\t";
/** `:` or `-` followed by a separator (space, tab, end of line). */
const sepAfter = (line: string, j: number) => j >= line.length || isBlank(line[j]);
const DOC_MARK = /^(?:---|\.\.\.)(?:[ \t]|$)/;

function firstNonBlank(line: string, from = 0): number {
  for (let j = from; j < line.length; j++) if (!isBlank(line[j])) return j;
  return -1;
}

/** The first duplicate key of `text` (valid YAML), an unsupported key construct, or null. */
export function findDuplicateKey(text: string): DuplicateKey | UnsupportedKey | null {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  try {
    scan(lines);
    return null;
  } catch (e) {
    if (e instanceof Found) return e.result;
    throw e;
  }
}

function scan(lines: string[]): void {
  const stack: Block[] = [];
  const top = () => stack[stack.length - 1];
  const unsupported = (what: string, li: number) =>
    new Found({ kind: "unsupported", what, line: li + 1 });
  const childPath = (): string[] => {
    const t = top();
    if (!t) return [];
    return t.kind === "map" && t.last !== undefined ? [...t.path, t.last] : t.path;
  };
  const addKey = (keys: Map<string, number>, path: string[], key: string, li: number) => {
    const first = keys.get(key);
    if (first !== undefined)
      throw new Found({
        kind: "duplicate",
        key,
        line: li + 1,
        firstLine: first + 1,
        path: [...path, key],
      });
    keys.set(key, li);
  };
  const blockKey = (indent: number, key: string, li: number) => {
    let t = top();
    if (t?.kind !== "map" || t.indent !== indent) {
      t = { kind: "map", indent, keys: new Map(), path: childPath() };
      stack.push(t);
    }
    addKey(t.keys, t.path, key, li);
    t.last = key;
  };

  /** Skips anchors (`&a`) and tags (`!t`) and the blanks after them; -1 at end of line. */
  const skipProps = (line: string, j: number): number => {
    let k = j;
    while (k >= 0 && k < line.length && (line[k] === "&" || line[k] === "!")) {
      while (k < line.length && !isBlank(line[k])) k++;
      k = firstNonBlank(line, k);
    }
    return k;
  };

  /** A quoted scalar starting at (li, j): where it ends (just past the closing quote). */
  const quoted = (li: number, j: number): { line: number; col: number } => {
    const q = lines[li]?.[j];
    let l = li;
    let k = j + 1;
    for (;;) {
      const line = lines[l];
      if (line === undefined) return { line: lines.length - 1, col: 0 };
      if (k >= line.length) {
        l++;
        k = 0;
        continue;
      }
      const ch = line[k];
      if (q === '"' && ch === "\\") k += 2;
      else if (ch === q) {
        if (q === "'" && line[k + 1] === "'") k += 2;
        else return { line: l, col: k + 1 };
      } else k++;
    }
  };

  /** Lines of a block scalar (`|`, `>`) whose parent is at `parent`: the next line after them. */
  const blockScalarEnd = (li: number, parent: number): number => {
    let k = li + 1;
    while (k < lines.length) {
      const l = lines[k] ?? "";
      if (DOC_MARK.test(l)) break;
      const ind = firstNonBlank(l);
      if (ind >= 0 && ind <= parent) break;
      k++;
    }
    return k;
  };

  /** A flow collection starting at (li, j); its keys are checked. Returns where it ends. */
  const flow = (li: number, j: number, base: string[]): { line: number; col: number } => {
    const st: Flow[] = [];
    const fpath = () => {
      const t = st[st.length - 1];
      if (!t) return base;
      return t.map && t.last !== undefined ? [...t.path, t.last] : t.path;
    };
    let l = li;
    let k = j;
    for (;;) {
      const line = lines[l];
      if (line === undefined) return { line: lines.length - 1, col: 0 };
      if (k >= line.length) {
        l++;
        k = 0;
        continue;
      }
      const ch = line[k] ?? "";
      if (isBlank(ch)) {
        k++;
        continue;
      }
      if (ch === "#" && (k === 0 || isBlank(line[k - 1]))) {
        l++;
        k = 0;
        continue;
      }
      const t = st[st.length - 1];
      if (ch === "{" || ch === "[") {
        if (t?.map && t.expectKey) throw unsupported("a collection used as a key", l);
        st.push({ map: ch === "{", keys: new Map(), expectKey: true, path: fpath() });
        k++;
        continue;
      }
      if (ch === "}" || ch === "]") {
        st.pop();
        k++;
        if (st.length === 0) return { line: l, col: k };
        continue;
      }
      if (ch === ",") {
        if (t) t.expectKey = true;
        k++;
        continue;
      }
      if (ch === ":") {
        if (t) t.expectKey = false;
        k++;
        continue;
      }
      if (ch === "?" && (k + 1 >= line.length || /[ \t,[\]{}]/.test(line[k + 1] ?? "")))
        throw unsupported("explicit keys (`? `)", l);
      if (ch === "&" || ch === "!") {
        while (k < line.length && !/[ \t,[\]{}]/.test(line[k] ?? "")) k++;
        continue;
      }
      if (ch === "*" && t?.map && t.expectKey) throw unsupported("an alias used as a key", l);
      // A scalar: quoted, or plain up to an indicator (it may go on over lines).
      const startLine = l;
      let source: string;
      if (ch === '"' || ch === "'") {
        const end = quoted(l, k);
        source =
          end.line === l
            ? line.slice(k, end.col)
            : [line.slice(k), ...lines.slice(l + 1, end.line), lines[end.line]?.slice(0, end.col)]
                .map((s, i) => (i === 0 ? s : (s ?? "").trim()))
                .join(" ");
        l = end.line;
        k = end.col;
      } else {
        const parts: string[] = [];
        let cur = l;
        let m = k;
        for (;;) {
          const ln = lines[cur] ?? "";
          let e = m;
          let stop = false;
          while (e < ln.length) {
            const c = ln[e] ?? "";
            if (",[]{}".includes(c)) {
              stop = true;
              break;
            }
            if (c === ":" && (e + 1 >= ln.length || /[ \t,[\]{}]/.test(ln[e + 1] ?? ""))) {
              stop = true;
              break;
            }
            if (c === "#" && e > 0 && isBlank(ln[e - 1])) {
              stop = true;
              break;
            }
            e++;
          }
          parts.push(ln.slice(m, e).trim());
          if (stop || cur + 1 >= lines.length) {
            l = cur;
            k = e;
            break;
          }
          // The scalar goes on unless the next line starts with an indicator.
          const nl = lines[cur + 1] ?? "";
          const n0 = firstNonBlank(nl);
          const c0 = n0 < 0 ? "" : (nl[n0] ?? "");
          if (n0 >= 0 && (",[]{}#".includes(c0) || (c0 === ":" && sepAfter(nl, n0 + 1)))) {
            l = cur + 1;
            k = n0;
            break;
          }
          cur++;
          m = n0 < 0 ? nl.length : n0;
        }
        source = parts.filter(Boolean).join(" ");
      }
      if (t?.map && t.expectKey) {
        const key = keyName(source);
        addKey(t.keys, t.path, key, startLine);
        t.last = key;
        t.expectKey = false;
      }
    }
  };

  /** The value after a block key's `:` at (li, j); the key's mapping is at `indent`. */
  const value = (li: number, j: number, indent: number): number => {
    const line = lines[li] ?? "";
    const k = skipProps(line, firstNonBlank(line, j));
    if (k < 0 || line[k] === "#") return li + 1; // nested block (or null) on the next lines
    const ch = line[k];
    if (ch === "|" || ch === ">") return blockScalarEnd(li, indent);
    if (ch === "[" || ch === "{") return flow(li, k, childPath()).line + 1;
    if (ch === '"' || ch === "'") return quoted(li, k).line + 1;
    return li + 1;
  };

  /** A node starting at column c of line li; returns the next line to read. */
  const node = (li: number, start: number, lineStart: boolean): number => {
    let c = start;
    const line = lines[li] ?? "";
    if (lineStart) {
      while (stack.length && (top()?.indent ?? -1) > c) stack.pop();
      const t = top();
      if (t?.kind === "seq" && t.indent === c && !(line[c] === "-" && sepAfter(line, c + 1)))
        stack.pop();
    }
    let j = skipProps(line, c);
    if (j < 0 || line[j] === "#") return li + 1;
    // `- - x`: a sequence entry per dash (a loop, not recursion: no depth limit).
    while (line[j] === "-" && sepAfter(line, j + 1)) {
      const t = top();
      if (!(t?.kind === "seq" && t.indent === j))
        stack.push({ kind: "seq", indent: j, keys: new Map(), path: childPath() });
      const next = firstNonBlank(line, j + 1);
      if (next < 0 || line[next] === "#") return li + 1;
      c = next;
      j = skipProps(line, next);
      if (j < 0 || line[j] === "#") return li + 1;
    }
    const ch = line[j];
    if (ch === "?" && sepAfter(line, j + 1)) throw unsupported("explicit keys (`? `)", li);
    if (ch === "|" || ch === ">") return blockScalarEnd(li, top()?.indent ?? -1);
    if (ch === "[" || ch === "{") {
      const end = flow(li, j, childPath());
      const rest = lines[end.line] ?? "";
      const a = firstNonBlank(rest, end.col);
      if (a >= 0 && rest[a] === ":" && sepAfter(rest, a + 1))
        throw unsupported("a collection used as a key", end.line);
      return end.line + 1;
    }
    if (ch === '"' || ch === "'") {
      const end = quoted(li, j);
      const rest = lines[end.line] ?? "";
      const a = firstNonBlank(rest, end.col);
      if (end.line === li && a >= 0 && rest[a] === ":" && sepAfter(rest, a + 1)) {
        blockKey(c, keyName(line.slice(j, end.col)), li);
        return value(li, a + 1, c);
      }
      return end.line + 1;
    }
    // A plain scalar: a key when `: ` comes before any comment.
    for (let k = j; k < line.length; k++) {
      const x = line[k];
      if (x === "#" && k > j && isBlank(line[k - 1])) break;
      if (x === ":" && sepAfter(line, k + 1)) {
        if (ch === "*") throw unsupported("an alias used as a key", li);
        blockKey(c, keyName(line.slice(j, k)), li);
        return value(li, k + 1, c);
      }
    }
    return li + 1;
  };

  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? "";
    if (DOC_MARK.test(line)) {
      stack.length = 0;
      const j = firstNonBlank(line, 3);
      i = j < 0 || line[j] === "#" ? i + 1 : node(i, j, false);
      continue;
    }
    if (line.startsWith("%")) {
      i++;
      continue;
    }
    const c = firstNonBlank(line);
    if (c < 0 || line[c] === "#") {
      i++;
      continue;
    }
    i = node(i, c, true);
  }
}
