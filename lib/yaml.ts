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
    new Scanner(lines).run();
    return null;
  } catch (e) {
    if (e instanceof Found) return e.result;
    throw e;
  }
}

/** A place in the text: 0-based line and column. */
interface Pos {
  line: number;
  col: number;
}

const unsupported = (what: string, li: number) =>
  new Found({ kind: "unsupported", what, line: li + 1 });

/** Records `key` (seen on line li) in a mapping's keys; a second one ends the scan. */
function addKey(keys: Map<string, number>, path: string[], key: string, li: number): void {
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
}

/** Skips anchors (`&a`) and tags (`!t`) and the blanks after them; -1 at end of line. */
function skipProps(line: string, j: number): number {
  let k = j;
  while (k >= 0 && k < line.length && (line[k] === "&" || line[k] === "!")) {
    while (k < line.length && !isBlank(line[k])) k++;
    k = firstNonBlank(line, k);
  }
  return k;
}

/** A quoted scalar starting at (li, j): where it ends (just past the closing quote). */
function quoted(lines: string[], li: number, j: number): Pos {
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
}

/** Lines of a block scalar (`|`, `>`) whose parent is at `parent`: the next line after them. */
function blockScalarEnd(lines: string[], li: number, parent: number): number {
  let k = li + 1;
  while (k < lines.length) {
    const l = lines[k] ?? "";
    if (DOC_MARK.test(l)) break;
    const ind = firstNonBlank(l);
    if (ind >= 0 && ind <= parent) break;
    k++;
  }
  return k;
}

const FLOW_SEP = /[ \t,[\]{}]/;

/** Where a plain scalar inside a flow collection stops on `line` (from m), and whether at an indicator. */
function plainStop(line: string, m: number): { end: number; stop: boolean } {
  for (let e = m; e < line.length; e++) {
    const c = line[e] ?? "";
    if (",[]{}".includes(c)) return { end: e, stop: true };
    if (c === ":" && (e + 1 >= line.length || FLOW_SEP.test(line[e + 1] ?? "")))
      return { end: e, stop: true };
    if (c === "#" && e > 0 && isBlank(line[e - 1])) return { end: e, stop: true };
  }
  return { end: line.length, stop: false };
}

/** A plain scalar in a flow collection at (l, k), which may go on over lines: its text and end. */
function plainFlowScalar(lines: string[], l: number, k: number): Pos & { source: string } {
  const parts: string[] = [];
  let cur = l;
  let m = k;
  for (;;) {
    const ln = lines[cur] ?? "";
    const { end, stop } = plainStop(ln, m);
    parts.push(ln.slice(m, end).trim());
    const source = () => parts.filter(Boolean).join(" ");
    if (stop || cur + 1 >= lines.length) return { source: source(), line: cur, col: end };
    // The scalar goes on unless the next line starts with an indicator.
    const nl = lines[cur + 1] ?? "";
    const n0 = firstNonBlank(nl);
    const c0 = n0 < 0 ? "" : (nl[n0] ?? "");
    if (n0 >= 0 && (",[]{}#".includes(c0) || (c0 === ":" && sepAfter(nl, n0 + 1))))
      return { source: source(), line: cur + 1, col: n0 };
    cur++;
    m = n0 < 0 ? nl.length : n0;
  }
}

/** A scalar in a flow collection at (l, k), quoted or plain: its source text and where it ends. */
function flowScalar(lines: string[], l: number, k: number): Pos & { source: string } {
  const line = lines[l] ?? "";
  const ch = line[k];
  if (ch !== '"' && ch !== "'") return plainFlowScalar(lines, l, k);
  const end = quoted(lines, l, k);
  const source =
    end.line === l
      ? line.slice(k, end.col)
      : [line.slice(k), ...lines.slice(l + 1, end.line), lines[end.line]?.slice(0, end.col)]
          .map((s, i) => (i === 0 ? s : (s ?? "").trim()))
          .join(" ");
  return { source, ...end };
}

/** A flow collection starting at (li, j); its keys are checked. Returns where it ends. */
function flow(lines: string[], li: number, j: number, base: string[]): Pos {
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
    const ch = line[k] ?? "";
    if (k >= line.length || (ch === "#" && (k === 0 || isBlank(line[k - 1])))) {
      l++;
      k = 0;
      continue;
    }
    const t = st[st.length - 1];
    if (isBlank(ch)) {
      k++;
      continue;
    }
    if (ch === "," || ch === ":") {
      if (t) t.expectKey = ch === ",";
      k++;
      continue;
    }
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
    if (ch === "?" && (k + 1 >= line.length || FLOW_SEP.test(line[k + 1] ?? "")))
      throw unsupported("explicit keys (`? `)", l);
    if (ch === "&" || ch === "!") {
      while (k < line.length && !FLOW_SEP.test(line[k] ?? "")) k++;
      continue;
    }
    if (ch === "*" && t?.map && t.expectKey) throw unsupported("an alias used as a key", l);
    // A scalar: quoted, or plain up to an indicator (it may go on over lines).
    const startLine = l;
    const sc = flowScalar(lines, l, k);
    l = sc.line;
    k = sc.col;
    if (t?.map && t.expectKey) {
      const key = keyName(sc.source);
      addKey(t.keys, t.path, key, startLine);
      t.last = key;
      t.expectKey = false;
    }
  }
}

/** The block structure of a document: a stack of mappings and sequences by indentation. */
class Scanner {
  private readonly stack: Block[] = [];

  constructor(private readonly lines: string[]) {}

  /** Reads every line; throws Found at the first duplicate or unsupported key. */
  run(): void {
    const lines = this.lines;
    let i = 0;
    while (i < lines.length) {
      const line = lines[i] ?? "";
      if (DOC_MARK.test(line)) {
        this.stack.length = 0;
        const j = firstNonBlank(line, 3);
        i = j < 0 || line[j] === "#" ? i + 1 : this.node(i, j, false);
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
      i = this.node(i, c, true);
    }
  }

  private top(): Block | undefined {
    return this.stack[this.stack.length - 1];
  }

  /** Keys leading to a node below the current top. */
  private childPath(): string[] {
    const t = this.top();
    if (!t) return [];
    return t.kind === "map" && t.last !== undefined ? [...t.path, t.last] : t.path;
  }

  private blockKey(indent: number, key: string, li: number): void {
    let t = this.top();
    if (t?.kind !== "map" || t.indent !== indent) {
      t = { kind: "map", indent, keys: new Map(), path: this.childPath() };
      this.stack.push(t);
    }
    addKey(t.keys, t.path, key, li);
    t.last = key;
  }

  /** The value after a block key's `:` at (li, j); the key's mapping is at `indent`. */
  private value(li: number, j: number, indent: number): number {
    const line = this.lines[li] ?? "";
    const k = skipProps(line, firstNonBlank(line, j));
    if (k < 0 || line[k] === "#") return li + 1; // nested block (or null) on the next lines
    const ch = line[k];
    if (ch === "|" || ch === ">") return blockScalarEnd(this.lines, li, indent);
    if (ch === "[" || ch === "{") return flow(this.lines, li, k, this.childPath()).line + 1;
    if (ch === '"' || ch === "'") return quoted(this.lines, li, k).line + 1;
    return li + 1;
  }

  /** Leaves the blocks a line at column c closes (deeper ones; a sequence without its dash). */
  private closeBlocks(line: string, c: number): void {
    while (this.stack.length && (this.top()?.indent ?? -1) > c) this.stack.pop();
    const t = this.top();
    if (t?.kind === "seq" && t.indent === c && !(line[c] === "-" && sepAfter(line, c + 1)))
      this.stack.pop();
  }

  /** A node starting at column c of line li; returns the next line to read. */
  private node(li: number, start: number, lineStart: boolean): number {
    let c = start;
    const line = this.lines[li] ?? "";
    if (lineStart) this.closeBlocks(line, c);
    let j = skipProps(line, c);
    if (j < 0 || line[j] === "#") return li + 1;
    // `- - x`: a sequence entry per dash (a loop, not recursion: no depth limit).
    while (line[j] === "-" && sepAfter(line, j + 1)) {
      const t = this.top();
      if (!(t?.kind === "seq" && t.indent === j))
        this.stack.push({ kind: "seq", indent: j, keys: new Map(), path: this.childPath() });
      const next = firstNonBlank(line, j + 1);
      if (next < 0 || line[next] === "#") return li + 1;
      c = next;
      j = skipProps(line, next);
      if (j < 0 || line[j] === "#") return li + 1;
    }
    const ch = line[j];
    if (ch === "?" && sepAfter(line, j + 1)) throw unsupported("explicit keys (`? `)", li);
    if (ch === "|" || ch === ">") return blockScalarEnd(this.lines, li, this.top()?.indent ?? -1);
    if (ch === "[" || ch === "{") {
      const end = flow(this.lines, li, j, this.childPath());
      if (colonAfter(this.lines[end.line] ?? "", end.col))
        throw unsupported("a collection used as a key", end.line);
      return end.line + 1;
    }
    if (ch === '"' || ch === "'") {
      const end = quoted(this.lines, li, j);
      const rest = this.lines[end.line] ?? "";
      const a = firstNonBlank(rest, end.col);
      if (end.line === li && colonAfter(rest, end.col)) {
        this.blockKey(c, keyName(line.slice(j, end.col)), li);
        return this.value(li, a + 1, c);
      }
      return end.line + 1;
    }
    // A plain scalar: a key when `: ` comes before any comment.
    for (let k = j; k < line.length; k++) {
      const x = line[k];
      if (x === "#" && k > j && isBlank(line[k - 1])) break;
      if (x === ":" && sepAfter(line, k + 1)) {
        if (ch === "*") throw unsupported("an alias used as a key", li);
        this.blockKey(c, keyName(line.slice(j, k)), li);
        return this.value(li, k + 1, c);
      }
    }
    return li + 1;
  }
}

/** Whether the first non-blank at or after `col` is a `:` indicator (the node before it is a key). */
function colonAfter(line: string, col: number): boolean {
  const a = firstNonBlank(line, col);
  return a >= 0 && line[a] === ":" && sepAfter(line, a + 1);
}
