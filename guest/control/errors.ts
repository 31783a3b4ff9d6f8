/**
 * zinit's error replies, pure: what a refusal looks like on each protocol.
 * A handler throws one control error (a code, the service it names); the
 * legacy protocol words it as zinit 0.2.14 did (`service name "x" unknown`,
 * Rust's Debug of the name), JSON-RPC as zinit 0.2.28 does: the message
 * `"<action>: <text>"` and the `data` object {code_name, service, action,
 * retryable, cause_chain, hint}. zinit's clients show these texts and some
 * match them, so they are a wire format like the codes.
 */
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import { controlError, RPC } from "./protocol.ts";

/** zinit's name of each code (its `code_name`). */
const CODE_NAMES: Readonly<Record<number, string>> = {
  [RPC.SERVICE_NOT_FOUND]: "ServiceNotFound",
  [RPC.SERVICE_ALREADY_MONITORED]: "ServiceAlreadyMonitored",
  [RPC.SERVICE_IS_UP]: "ServiceIsUp",
  [RPC.SERVICE_IS_DOWN]: "ServiceIsDown",
  [RPC.INVALID_SIGNAL]: "InvalidSignal",
  [RPC.CONFIG_ERROR]: "ConfigError",
  [RPC.SHUTTING_DOWN]: "ShuttingDown",
  [RPC.SERVICE_ALREADY_EXISTS]: "ServiceAlreadyExists",
  [RPC.SERVICE_FILE_ERROR]: "ServiceFileError",
};

/** zinit's hint for each code; any other code gets DEFAULT_HINT. */
const HINTS: Readonly<Record<number, string>> = {
  [RPC.SERVICE_NOT_FOUND]: "Ensure the service is monitored or the name is correct",
  [RPC.SERVICE_ALREADY_MONITORED]:
    "The service is already monitored; call service_forget or control it with start/stop",
  [RPC.SERVICE_IS_UP]: "Service is already up; use service_stop or restart",
  [RPC.SERVICE_IS_DOWN]: "Service is down; start it before sending signals or requesting stats",
  [RPC.SHUTTING_DOWN]: "Wait for shutdown to complete or avoid mutating operations during shutdown",
  [RPC.SERVICE_FILE_ERROR]: "Check filesystem permissions, disk space, and path",
};
const DEFAULT_HINT = "Enable verbose logs and inspect cause_chain for details";

/** Pure: a string as Rust's Debug prints it (zinit 0.2.14's `{name:?}`): quoted, escaped. */
export function rustDebug(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\0") out += "\\0";
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Pure: zinit 0.2.28's text of a refusal about service `name` (after "<action>: "). */
function serviceText(rpcCode: number, name: string): string {
  switch (rpcCode) {
    case RPC.SERVICE_NOT_FOUND:
      return `service '${name}' not found`;
    case RPC.SERVICE_ALREADY_MONITORED:
      return `service '${name}' already monitored`;
    case RPC.SERVICE_IS_UP:
      return `service '${name}' is up`;
    case RPC.SERVICE_IS_DOWN:
      return `service '${name}' is down`;
    default:
      return "system is shutting down";
  }
}

/**
 * A refusal about service `name` (not found, already monitored, is up, is
 * down, shutting down), in zinit's words; `extra`: hero-init's detail for
 * operators (data.cause_chain), when it has one.
 */
export function serviceError(rpcCode: number, name: string, extra?: string): HeroError {
  const e = controlError(rpcCode, serviceText(rpcCode, name));
  e.detail.service = name;
  if (extra) e.detail.rpcData = { cause_chain: [extra] };
  return e;
}

/**
 * An error whose reply is complete as thrown: `message` is the whole
 * message (the action included) and `data` the whole data object, as zinit
 * builds them for invalid names, signals, configs and service files.
 */
export function finalError(
  rpcCode: number,
  message: string,
  data: Record<string, unknown>,
): HeroError {
  const e = controlError(rpcCode, message);
  e.detail.rpcData = { final: true, ...data };
  return e;
}

/** zinit's -32602 for a name its file rules refuse (`action`: "monitoring service", …). */
export function invalidNameError(action: string, name: string): HeroError {
  return finalError(RPC.INVALID_PARAMS, `${action}: invalid service name '${name}'`, {
    code_name: "InvalidServiceName",
    action,
    service: name,
    hint: "Name must not contain '/', '\\\\' or '.'",
  });
}

/** zinit's -32004 for a signal it does not know. */
export function invalidSignalError(signal: string): HeroError {
  return finalError(RPC.INVALID_SIGNAL, `parsing signal: invalid signal '${signal}'`, {
    code_name: "InvalidSignal",
    action: "parsing signal",
    signal,
    hint: "Use a valid POSIX signal like SIGTERM or SIGKILL",
  });
}

/** The JSON-RPC error object. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** The protocol's own errors (parse, request, method, params): words as jsonrpsee has them, never an action. */
const PROTOCOL_CODES: readonly number[] = [
  RPC.PARSE,
  RPC.INVALID_REQUEST,
  RPC.METHOD_NOT_FOUND,
  RPC.INVALID_PARAMS,
];
const isProtocolCode = (code: number) => PROTOCOL_CODES.includes(code);

/**
 * Pure: the error object of the reply to a request of a method whose zinit
 * action is `action` (none: hero-init's own methods, whose errors go out
 * as thrown).
 */
export function rpcErrorObject(e: unknown, action: string | undefined): RpcErrorObject {
  const isControl = isHeroError(e, "control");
  const code = isControl ? (e.detail.rpcCode ?? RPC.INTERNAL) : RPC.INTERNAL;
  const message = (e as Error)?.message ?? String(e);
  const data = isControl ? e.detail.rpcData : undefined;
  if (data && typeof data === "object" && (data as { final?: boolean }).final) {
    const { final: _, ...rest } = data as Record<string, unknown>;
    return { code, message, data: rest };
  }
  if (isProtocolCode(code)) return data === undefined ? { code, message } : { code, message, data };
  if (!action) return { code, message };
  const cause = (data as { cause_chain?: unknown } | undefined)?.cause_chain;
  return {
    code,
    message: `${action}: ${message}`,
    data: {
      code_name: CODE_NAMES[code] ?? "InternalError",
      service: (isControl && e.detail.service) || null,
      action,
      retryable: code === RPC.SERVICE_ALREADY_MONITORED || code === RPC.SERVICE_IS_DOWN,
      cause_chain: Array.isArray(cause) ? cause : null,
      hint: HINTS[code] ?? DEFAULT_HINT,
    },
  };
}

/**
 * Pure: the legacy protocol's text of an error (zinit 0.2.14's words) for
 * command `cmd`. `monitor` answers every failure to load a file alike.
 */
export function legacyText(e: unknown, cmd: string): string {
  if (!isHeroError(e, "control") || e.detail.rpcCode === undefined)
    return (e as Error)?.message ?? String(e);
  const code = e.detail.rpcCode;
  const name = rustDebug(e.detail.service ?? "");
  if (code === RPC.SERVICE_ALREADY_MONITORED) return `service ${name} already monitored`;
  if (code === RPC.SHUTTING_DOWN) return "zinit is shutting down";
  if (cmd === "monitor") return "failed to load service config";
  if (code === RPC.SERVICE_NOT_FOUND) return `service name ${name} unknown`;
  if (code === RPC.SERVICE_IS_UP) return `service ${name} is up`;
  if (code === RPC.SERVICE_IS_DOWN) return `service ${name} is down`;
  if (code === RPC.INVALID_SIGNAL) return "EINVAL: Invalid argument";
  return e.message;
}
