/**
 * The one error type of hero-init: HeroError. Its `code` says what went
 * wrong for programs, its message says it for people (naming what is wrong
 * and where), `where` points at bad input (file, line, column, field) and
 * `detail` carries the data a caller acts on (errno, HTTP status, JSON-RPC
 * code, whether to retry).
 *
 * Codes are dotted, kind first: "sys.ENOENT", "control.service-not-found",
 * "download.hash-mismatch". A code without a dot is an input error (kind
 * "input"): "toml-syntax", "schema", "usage"… These are the codes bad input
 * always had, kept bare because programs and tests match them. Test a kind
 * with isHeroError(e, "sys") (matches "sys" and "sys.*"); input errors match
 * "input" and "input.<code>" ("input.usage" matches "usage"). Test the kind,
 * never `instanceof HeroError` alone: every error here is one, and an input
 * error means something else (the CLI exits 2) than a failed system call.
 *
 * The kinds in use (prefix: who throws it; its codes; its detail):
 * - input (bare codes): bad input anywhere (config, service files,
 *   manifests, requests, command lines); where: file/line/column/field.
 * - sys.<ERRNO>: a failed system call (sys/ffi.ts); detail errno, call.
 * - supervisor.*: a request the supervisor refuses (guest/supervisor):
 *   not-found, exists, is-up, is-down, shutting-down, config, bad-signal.
 * - control.*: a zinit JSON-RPC error reply (guest/control), named after
 *   its code in RPC (control.service-not-found, control.invalid-params…);
 *   control.no-daemon when the client cannot talk to it; detail rpcCode,
 *   rpcData (the reply's data), service.
 * - agent.*: a guest-agent request that failed, named after the HTTP status
 *   (agent.bad-request, agent.forbidden, agent.not-found, agent.conflict,
 *   agent.too-large…) the same on both ends (lib/agent-protocol.ts);
 *   on the host side also agent.no-answer (status 0), agent.protocol (a
 *   broken exec stream) and agent.not-regular (copyTo's local file);
 *   detail status.
 * - download.*: a failed download or poll (update/request.ts): too-large,
 *   too-slow, timeout, size-mismatch, hash-mismatch, http-status, network,
 *   aborted, io; detail url, retryable, status, retryAfterMs, stats.
 * - trust.*: a manifest or key set the update engine's trust rules refuse
 *   (update/policy.ts, trust.ts; the run's outcome is "refused"):
 *   untrusted-key, bad-signature, no-version, rollback, no-expiry, expired,
 *   schema, keys.
 * - apply.*: an update that could not be installed (update/apply.ts):
 *   download (a binary's download or unpacking), self-update (the
 *   hand-off to the new hero-init).
 * - signature.*: a minisign key or signature (lib/minisign.ts) that is
 *   malformed, encrypted, signed by an untrusted-key, or bad (does not
 *   verify); where: line.
 * - cpio.*: a malformed newc archive or entry (host/cpio/newc.ts): path,
 *   duplicate, magic, truncated, hex, field.
 * - elf.*: an executable the private-loader patch cannot handle
 *   (host/elf/private-loader.ts): not-elf64, no-interp, no-dynamic,
 *   too-small, no-debug-slot.
 * A new kind: a short lower-case prefix, listed here, with a builder beside
 * the code that throws it when the message or detail is composed.
 */

/** Where bad input is: a file (or "kernel cmdline", "request"), line, column, field. */
export interface ErrorWhere {
  file?: string;
  line?: number;
  column?: number;
  field?: string;
}

/** The data some kinds carry (see the module comment); a field that does not apply is absent. */
export interface ErrorDetail {
  /** sys: the errno of the failed call. */
  errno?: number;
  /** sys: the system call. */
  call?: string;
  /** agent, download: the HTTP status (agent: 0 when no answer came). */
  status?: number;
  /** control: the JSON-RPC error code of the reply. */
  rpcCode?: number;
  /** control: the `data` member of the reply (zinit's object: code_name, action, hint…). */
  rpcData?: unknown;
  /** control: the service the request named. */
  service?: string;
  /** download: the URL asked for. */
  url?: string;
  /** download: whether asking again could help. */
  retryable?: boolean;
  /** download: the server's Retry-After in ms (429/503), for callers that poll. */
  retryAfterMs?: number;
  /** download: what the attempts cost before the error (update/request.ts DownloadStats). */
  stats?: Readonly<Record<string, number>>;
}

/** The one error type: see the module comment for the codes. */
export class HeroError extends Error {
  constructor(
    /** Dotted, kind first ("sys.ENOENT"); bare for input errors ("toml-syntax", "schema", "cycle"). */
    readonly code: string,
    message: string,
    readonly where: ErrorWhere = {},
    readonly detail: ErrorDetail = {},
  ) {
    super(message);
  }

  /**
   * An input error as "file:line:col: field: message", omitting what is
   * unknown (the form editors and people read). Other kinds print as any
   * Error does ("Error: message"): their message already says where.
   */
  override toString(): string {
    if (!isHeroError(this, "input")) return super.toString();
    const { file, line, column, field } = this.where;
    const pos = [file, line, column].filter((x) => x !== undefined).join(":");
    return [pos, field, this.message].filter(Boolean).join(": ");
  }
}

/** Pure: a code with its kind ("schema" → "input.schema"; "sys.ENOENT" stays). */
function fullCode(code: string): string {
  return code.includes(".") ? code : `input.${code}`;
}

/**
 * Whether `e` is a HeroError whose code is `prefix` or starts with
 * `prefix.`: isHeroError(e, "sys") for any failed system call,
 * isHeroError(e, "sys.EEXIST") for one errno, isHeroError(e, "input") for
 * bad input. Without a prefix: any HeroError.
 */
export function isHeroError(e: unknown, prefix?: string): e is HeroError {
  if (!(e instanceof HeroError)) return false;
  if (prefix === undefined) return true;
  const code = fullCode(e.code);
  return code === prefix || code.startsWith(`${prefix}.`);
}

/**
 * Pure: a code without its kind ("sys.ENOENT" → "ENOENT", "trust.rollback"
 * → "rollback"; a bare input code stays), for results that carry the bare
 * code (the update engine's `code`).
 */
export function shortCode(code: string): string {
  const dot = code.indexOf(".");
  return dot < 0 ? code : code.slice(dot + 1);
}
