/**
 * The service file format: zinit's YAML (/etc/zinit/<name>.yaml) plus
 * optional hero-init fields that zinit ignores. One schema, shared by the
 * guest supervisor and the host injector (which validates before writing).
 * See docs/services.md.
 */
import * as v from "valibot";
import { type Bounds, boundsMessage, checkBounds, costFor, RESERVED_KEYS } from "./bounds.ts";
import { HeroError } from "./errors.ts";
import { findDuplicateKey } from "./yaml.ts";

/** Signal names accepted in `signal.stop` and `kill`, zinit style (case-insensitive, SIG optional). */
export const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGWINCH: 28,
};

/** Normalises "term", "sigterm", "SIGTERM" or "15" to "SIGTERM"; null if unknown. */
export function signalName(s: string): string | null {
  const up = s.trim().toUpperCase();
  if (/^\d+$/.test(up))
    return Object.entries(SIGNALS).find(([, n]) => n === Number(up))?.[0] ?? null;
  const name = up.startsWith("SIG") ? up : `SIG${up}`;
  return name in SIGNALS ? name : null;
}

/**
 * Service names: the file stem; no "/" or "..", nothing a path could abuse,
 * and none of `__proto__`, `constructor`, `prototype` (names become object keys).
 */
export const SERVICE_NAME_RE =
  /^(?!(?:__proto__|constructor|prototype)$)[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,127}$/;

/** Largest service file (bytes): the loader, service_create and the injector refuse bigger ones. */
export const MAX_SERVICE_FILE = 256 * 1024;

/**
 * Bounds of a service file's parsed value: what a file of MAX_SERVICE_FILE
 * bytes without aliases can never exceed, so only alias expansion (a "billion
 * laughs" file) or a deep nest is refused. A valid spec nests 3 levels.
 */
export const SERVICE_BOUNDS: Bounds = {
  maxCost: costFor(MAX_SERVICE_FILE),
  maxDepth: 16,
  refuseReservedKeys: true,
};

const Str = v.pipe(v.string(), v.maxLength(65536));
const Seconds = v.pipe(v.number(), v.minValue(0), v.maxValue(86400));
const Ms = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(3_600_000));
const EnvValue = v.pipe(
  v.union([v.string(), v.number(), v.boolean()]),
  v.transform((x) => String(x)),
);

/** hero-init extra: restart backoff and give-up limit. */
export const RestartSchema = v.strictObject({
  /** Delay before the first restart (ms). */
  delay: v.optional(Ms, 100),
  /** Cap on the delay (ms); it doubles per restart until then. */
  max_delay: v.optional(Ms, 30_000),
  /** A run longer than this (s) counts as stable and resets the backoff. */
  reset_after: v.optional(Seconds, 10),
  /** Give up (Failure) after this many restarts within `window` seconds; 0 = never. */
  limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 10),
  window: v.optional(Seconds, 60),
});

/** Longest `every` period: 31 days. */
const MAX_EVERY_S = 31 * 86400;
const EVERY_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Pure: an `every` value (seconds, or "90s", "5m", "2h", "1d") in seconds; null when malformed. */
export function everySeconds(x: number | string): number | null {
  if (typeof x === "number") return Number.isFinite(x) ? x : null;
  const m = /^\s*(\d+)\s*([smhd])\s*$/.exec(x);
  return m ? Number(m[1]) * (EVERY_UNITS[m[2] as string] as number) : null;
}

/** hero-init extra: a oneshot's period (seconds, or a number with unit s/m/h/d). */
const Every = v.pipe(
  v.union([v.number(), v.string()], 'must be seconds or a duration like "5m"'),
  v.transform(everySeconds),
  v.check(
    (n): n is number => n !== null && n >= 1 && n <= MAX_EVERY_S,
    `must be a duration from 1s to 31d (seconds, or a number with s, m, h or d)`,
  ),
  v.transform((n) => n as number),
);

/** hero-init extra: a rotated log file besides the ring. */
export const LogFileSchema = v.strictObject({
  path: v.optional(v.pipe(Str, v.startsWith("/", "must be an absolute path"))),
  max_size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(4096)), 10 * 1024 * 1024),
  keep: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100)), 5),
});

/**
 * One service file. zinit's fields first, then hero-init's extras. An
 * unknown top-level field in a file is ignored, as zinit ignores it (existing
 * zinit files keep working), and reported as a warning with its line (a
 * misspelt `oneshot` is not silent); a service_create request with one is
 * refused. Unknown fields inside hero-init's own sections are refused.
 */
export const ServiceSpecSchema = v.object({
  exec: v.pipe(Str, v.minLength(1, "must not be empty")),
  test: v.optional(v.nullable(Str), ""),
  oneshot: v.optional(v.boolean("must be true or false"), false),
  after: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.check(
          (s) => !RESERVED_KEYS.has(s),
          (i) => `"${String(i.input)}" is a reserved name, not a service name`,
        ),
        v.regex(SERVICE_NAME_RE, "must be a service name"),
      ),
    ),
    [],
  ),
  signal: v.optional(
    v.strictObject({
      stop: v.optional(
        v.pipe(
          v.string(),
          v.check((s) => signalName(s) !== null, "unknown signal"),
        ),
        "sigterm",
      ),
    }),
    { stop: "sigterm" },
  ),
  log: v.optional(
    v.picklist(["none", "ring", "stdout"], 'must be "none", "ring" or "stdout"'),
    "ring",
  ),
  env: v.optional(
    v.record(v.pipe(v.string(), v.regex(/^[^=\0]+$/, "invalid variable name")), EnvValue),
    {},
  ),
  dir: v.optional(v.pipe(Str, v.startsWith("/", "must be an absolute path")), "/"),
  shutdown_timeout: v.optional(Seconds, 10),
  // hero-init extras (zinit ignores them)
  restart: v.optional(RestartSchema, {}),
  log_file: v.optional(LogFileSchema),
  /** Run as this uid/gid (dropped by the hero-exec helper after joining the cgroup). */
  uid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 31 - 1))),
  gid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 31 - 1))),
  /** Ready on systemd's `READY=1` through NOTIFY_SOCKET, not on spawn. */
  notify: v.optional(v.boolean("must be true or false")),
  /** A oneshot re-run on this period (seconds), never overlapping itself. */
  every: v.optional(Every),
});

/** A validated service spec. */
export type ServiceSpec = v.InferOutput<typeof ServiceSpecSchema>;
/** The input form (what a YAML file or service_create carries). */
export type ServiceSpecInput = v.InferInput<typeof ServiceSpecSchema>;

/** Best-effort 1-based line of `path` in YAML text (indentation-aware). */
export function locateYamlKey(
  text: string,
  path: readonly (string | number)[],
): number | undefined {
  const keys = path.filter((p): p is string => typeof p === "string");
  const lines = text.split("\n");
  let from = 0;
  let found: number | undefined;
  let indent = -1;
  for (const key of keys) {
    const re = new RegExp(
      `^(\\s*)(-\\s+)?["']?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*:`,
    );
    let hit = -1;
    for (let i = from; i < lines.length; i++) {
      const m = re.exec(lines[i] ?? "");
      if (m && (m[1] ?? "").length > indent) {
        hit = i;
        indent = (m[1] ?? "").length;
        break;
      }
    }
    if (hit < 0) break;
    found = hit + 1;
    from = hit + 1;
  }
  return found;
}

/** The fields a strict object at `path` knows (for "unknown field" messages). */
function knownFields(path: readonly (string | number)[]): string[] {
  const parent =
    path.length <= 1
      ? ServiceSpecSchema
      : { restart: RestartSchema, log_file: LogFileSchema }[String(path[0])];
  if (parent) return Object.keys(parent.entries);
  return path[0] === "signal" ? ["stop"] : [];
}

/**
 * Refuses a parsed value that is out of {@link SERVICE_BOUNDS}, naming the
 * line where it can. `request`: the value is a request's content, not a file.
 */
function checkServiceBounds(raw: unknown, file: string, text: string, request = false): void {
  const issue = checkBounds(raw, SERVICE_BOUNDS);
  if (!issue) return;
  const field = issue.path.join(".");
  const message =
    request && issue.kind === "cost"
      ? `content is larger than a service file may be (${MAX_SERVICE_FILE} bytes)`
      : boundsMessage(issue, SERVICE_BOUNDS);
  throw new HeroError(issue.kind === "reserved" ? "reserved" : "size", message, {
    file,
    line: locateYamlKey(text, issue.path),
    ...(field ? { field } : {}),
  });
}

/**
 * Validates a parsed object as a service spec; errors name file, line and
 * field. The value is bounded first (size once expanded, depth, reserved
 * keys), so anything may be passed: a parsed file, a JSON request.
 */
export function validateServiceSpec(
  raw: unknown,
  file: string,
  text = "",
  request = false,
): ServiceSpec {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new HeroError("schema", "a service file must be a YAML mapping with at least `exec:`", {
      file,
      line: 1,
    });
  }
  checkServiceBounds(raw, file, text, request);
  const unknown = request ? unknownServiceFields(raw) : [];
  if (unknown.length)
    throw new HeroError(
      "schema",
      `unknown field (known: ${Object.keys(ServiceSpecSchema.entries).join(", ")})`,
      { file, field: unknown[0] as string },
    );
  const res = v.safeParse(ServiceSpecSchema, raw);
  if (!res.success) {
    const issue = res.issues[0];
    const path = (issue.path ?? []).map((p) => p.key as string | number);
    const field = path.join(".") || "exec";
    const message =
      issue.kind === "schema" && issue.expected === "never"
        ? `unknown field (known: ${knownFields(path).join(", ")})`
        : issue.kind === "schema" && issue.received === "undefined"
          ? "is required"
          : issue.message;
    throw new HeroError("schema", message, { file, line: locateYamlKey(text, path), field });
  }
  if (res.output.every !== undefined && !res.output.oneshot)
    throw new HeroError(
      "schema",
      "a period needs `oneshot: true` (a long-running service restarts by itself)",
      {
        file,
        line: locateYamlKey(text, ["every"]),
        field: "every",
      },
    );
  return res.output;
}

/**
 * Service-file YAML from outside (a file, service_get, the injector) →
 * its parsed value, checked but not validated against the schema: at most
 * MAX_SERVICE_FILE bytes, valid YAML, no duplicate keys, and within
 * SERVICE_BOUNDS once aliases are expanded. Throws HeroError with file/line.
 */
export function parseServiceYaml(text: string, file: string): unknown {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_SERVICE_FILE)
    throw new HeroError("size", `file is ${bytes} bytes (limit ${MAX_SERVICE_FILE})`, { file });
  let raw: unknown;
  try {
    raw = Bun.YAML.parse(text);
  } catch (e) {
    // Bun's parser recurses: a deep nest ends in a RangeError (its line is meaningless).
    if (e instanceof RangeError) throw new HeroError("yaml-syntax", "nested too deeply", { file });
    const line = (e as { line?: number }).line;
    throw new HeroError("yaml-syntax", (e as Error).message.replace(/^YAML Parse error: /, ""), {
      file,
      ...(line ? { line } : {}),
    });
  }
  const dup = findDuplicateKey(text);
  if (dup?.kind === "duplicate")
    throw new HeroError(
      "duplicate-key",
      `duplicate key "${dup.key}" (first at line ${dup.firstLine}); YAML would keep only the last`,
      { file, line: dup.line, field: dup.path.join(".") },
    );
  if (dup?.kind === "unsupported")
    throw new HeroError("yaml-syntax", `${dup.what} are not supported in service files`, {
      file,
      line: dup.line,
    });
  checkServiceBounds(raw, file, text);
  return raw;
}

/** Top-level fields of a parsed service value that the schema does not know. */
export function unknownServiceFields(raw: unknown): string[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return [];
  return Object.keys(raw).filter((k) => !(k in ServiceSpecSchema.entries));
}

/**
 * Parses a service file's YAML text; throws HeroError with file/line/field.
 * `warn` receives one message per ignored unknown top-level field.
 */
export function parseServiceFile(
  text: string,
  file: string,
  warn?: (message: string) => void,
): ServiceSpec {
  const raw = parseServiceYaml(text, file);
  const spec = validateServiceSpec(raw, file, text);
  for (const k of unknownServiceFields(raw)) {
    const line = locateYamlKey(text, [k]);
    warn?.(
      `${file}${line ? `:${line}` : ""}: ${k}: unknown field, ignored as zinit does (known: ${Object.keys(ServiceSpecSchema.entries).join(", ")})`,
    );
  }
  return spec;
}

/**
 * The file text service_create writes for `content` (a JSON request's
 * object): validated like a file, at most MAX_SERVICE_FILE bytes, and read
 * back by {@link parseServiceFile} to the same value, so what is written is
 * exactly what the loader will accept. Pure; throws HeroError.
 */
export function serviceFileText(content: unknown, file: string): string {
  validateServiceSpec(content, file, "", true);
  const text = Bun.YAML.stringify(content, null, 2);
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_SERVICE_FILE)
    throw new HeroError(
      "size",
      `the service file would be ${bytes} bytes (limit ${MAX_SERVICE_FILE})`,
      { file },
    );
  const back = parseServiceYaml(text, file);
  validateServiceSpec(back, file, text);
  if (!Bun.deepEquals(back, content))
    throw new HeroError("schema", "content does not read back the same from YAML", { file });
  return text;
}
