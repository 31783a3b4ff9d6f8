/**
 * TOML parsing with errors that carry file, line and column. Every TOML
 * document hero-init reads comes from outside (vm.toml in an image, signed
 * manifests and key sets from the network, node configs), so each parse is
 * bounded: the text's size before parsing, the value's depth and size after
 * (TOML has no aliases, but deep arrays crash recursive readers), and keys
 * that name JavaScript's object machinery (`__proto__`…) are refused.
 */
// The parser alone: the package's root also loads its stream parser, which loads node:stream
// (~60 ms of PID 1's boot under TCG; docs/benchmarks.md, session 12), and its serialiser
// (lib/toml-stringify.ts).
import parseTomlText from "@iarna/toml/parse-string.js";
import { type Bounds, boundsMessage, checkBounds, costFor } from "./bounds.ts";
import { HeroError } from "./errors.ts";

/** Limits of one TOML document. */
export interface TomlLimits {
  /** Largest text (bytes). */
  maxBytes: number;
  /** Deepest nesting of tables and arrays. */
  maxDepth: number;
}

/** The default: far above any real vm.toml, manifest or key set. */
export const TOML_LIMITS: TomlLimits = { maxBytes: 4 * 1024 * 1024, maxDepth: 32 };

interface TomlSyntaxError {
  fromTOML: true;
  line: number;
  col: number;
  message: string;
}

function isTomlError(e: unknown): e is TomlSyntaxError {
  return typeof e === "object" && e !== null && (e as { fromTOML?: unknown }).fromTOML === true;
}

/**
 * Parses TOML text; a syntax error becomes an input error at file:line:col
 * (1-based), and a document over `limits` an input error naming the field.
 */
export function parseToml(
  text: string,
  file: string,
  limits: TomlLimits = TOML_LIMITS,
): Record<string, unknown> {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limits.maxBytes)
    throw new HeroError("size", `file is ${bytes} bytes (limit ${limits.maxBytes})`, { file });
  let value: Record<string, unknown>;
  try {
    value = parseTomlText(text) as Record<string, unknown>;
  } catch (e) {
    if (isTomlError(e)) {
      const first = e.message.split("\n")[0] ?? e.message;
      throw new HeroError("toml-syntax", first.replace(/ at row \d+, col \d+, pos \d+:$/, ""), {
        file,
        line: e.line + 1,
        column: e.col + 1,
      });
    }
    // @iarna/toml throws plain errors for some values (e.g. "Invalid Datetime"): still bad input.
    throw new HeroError("toml-syntax", e instanceof Error ? e.message : String(e), { file });
  }
  const bounds: Bounds = {
    maxCost: costFor(bytes),
    maxDepth: limits.maxDepth,
    refuseReservedKeys: true,
  };
  const issue = checkBounds(value, bounds);
  if (issue) {
    const field = issue.path.join(".");
    throw new HeroError(
      issue.kind === "reserved" ? "reserved" : "size",
      boundsMessage(issue, bounds),
      {
        file,
        line: locateKey(text, issue.path),
        ...(field ? { field } : {}),
      },
    );
  }
  return value;
}

/**
 * Best-effort line (1-based) of the key at `path` in TOML source, so schema
 * errors can say where: the first `key =` line of the last string segment
 * that follows the table header of the earlier segments, if any.
 */
export function locateKey(text: string, path: readonly (string | number)[]): number | undefined {
  const keys = path.filter((p): p is string => typeof p === "string");
  const last = keys.at(-1);
  if (last === undefined) return undefined;
  const lines = text.split("\n");
  const table = keys.slice(0, -1).join(".");
  let start = 0;
  if (table) {
    const header = lines.findIndex((l) =>
      new RegExp(`^\\s*\\[\\[?\\s*${escapeRe(table)}\\s*\\]`).test(l),
    );
    if (header >= 0) start = header;
  }
  const keyRe = new RegExp(`^\\s*("?)${escapeRe(last)}\\1\\s*=`);
  for (let i = start; i < lines.length; i++) if (keyRe.test(lines[i] ?? "")) return i + 1;
  const header = lines.findIndex((l) =>
    new RegExp(`^\\s*\\[\\[?\\s*${escapeRe(keys.join("."))}\\s*\\]`).test(l),
  );
  return header >= 0 ? header + 1 : undefined;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
