/**
 * The service file format: zinit's YAML (/etc/zinit/<name>.yaml) plus
 * optional hero-init fields that zinit ignores. One schema, shared by the
 * guest supervisor and the host injector (which validates before writing).
 * See docs/services.md.
 */
import * as v from "valibot";
import { InputError } from "./errors.ts";

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

/** Service names: the file stem; no "/" or "..", nothing a path could abuse. */
export const SERVICE_NAME_RE = /^[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,127}$/;

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

/** hero-init extra: a rotated log file besides the ring. */
export const LogFileSchema = v.strictObject({
  path: v.optional(v.pipe(Str, v.startsWith("/", "must be an absolute path"))),
  max_size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(4096)), 10 * 1024 * 1024),
  keep: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100)), 5),
});

/** One service file. zinit's fields first, then hero-init's extras. */
export const ServiceSpecSchema = v.object({
  exec: v.pipe(Str, v.minLength(1, "must not be empty")),
  test: v.optional(v.nullable(Str), ""),
  oneshot: v.optional(v.boolean("must be true or false"), false),
  after: v.optional(
    v.array(v.pipe(v.string(), v.regex(SERVICE_NAME_RE, "must be a service name"))),
    [],
  ),
  signal: v.optional(
    v.object({
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
  // hero-init extras (zinit ignores unknown fields)
  restart: v.optional(RestartSchema, {}),
  log_file: v.optional(LogFileSchema),
  /** Run as this uid/gid (dropped by the hero-exec helper after joining the cgroup). */
  uid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 31 - 1))),
  gid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 31 - 1))),
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

/** Validates a parsed object as a service spec; errors name file, line and field. */
export function validateServiceSpec(raw: unknown, file: string, text = ""): ServiceSpec {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InputError("schema", "a service file must be a YAML mapping with at least `exec:`", {
      file,
      line: 1,
    });
  }
  const res = v.safeParse(ServiceSpecSchema, raw);
  if (!res.success) {
    const issue = res.issues[0];
    const path = (issue.path ?? []).map((p) => p.key as string | number);
    const field = path.join(".") || "exec";
    const message =
      issue.kind === "schema" && issue.received === "undefined" ? "is required" : issue.message;
    throw new InputError("schema", message, { file, line: locateYamlKey(text, path), field });
  }
  return res.output;
}

/** Parses a service file's YAML text (Bun.YAML); throws InputError with file/line/field. */
export function parseServiceFile(text: string, file: string): ServiceSpec {
  let raw: unknown;
  try {
    raw = Bun.YAML.parse(text);
  } catch (e) {
    const line = (e as { line?: number }).line;
    throw new InputError("yaml-syntax", (e as Error).message.replace(/^YAML Parse error: /, ""), {
      file,
      ...(line ? { line } : {}),
    });
  }
  return validateServiceSpec(raw, file, text);
}
