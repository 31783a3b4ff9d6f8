/**
 * The ControlApi over a Supervisor: zinit's shapes for list/status/stats,
 * service files for create/delete/get/monitor, and the ring for logs.
 * Shared by the control socket and (later) the UI.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fsyncPath, tempPathFor } from "../../lib/atomic-file.ts";
import { HeroError, isHeroError } from "../../lib/errors.ts";
import { log } from "../../lib/log.ts";
import { readServiceText } from "../../lib/service-file.ts";
import {
  parseServiceFile,
  parseServiceYaml,
  SERVICE_NAME_RE,
  type ServiceSpec,
  type ServiceSpecInput,
  SIGNALS,
  serviceFileText,
} from "../../lib/service-spec.ts";
import { groupPids } from "../supervisor/cgroup.ts";
import { formatZinit } from "../supervisor/logs.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { finalError, invalidNameError, invalidSignalError, serviceError } from "./errors.ts";
import { type ControlApi, controlError, RPC } from "./protocol.ts";
import { processUsage } from "./stats.ts";

/**
 * zinit's rendering of a state in list/status: Rust's Debug of its State,
 * so an exit shows as `Error(Exited(Pid(42), 3))` or
 * `Error(Signaled(Pid(42), SIGKILL, false))`. An invalid service file (which
 * zinit would skip) shows as `Error(config: file:line: field: reason)`.
 */
export function stateText(s: {
  state: string;
  reason: string;
  lastExit: { code: number | null; signal: string | null } | null;
  lastPid: number;
}): string {
  if (s.state !== "Error") return s.state;
  if (s.reason.startsWith("config:")) return `Error(${s.reason})`;
  if (s.lastExit?.signal) return `Error(Signaled(Pid(${s.lastPid}), ${s.lastExit.signal}, false))`;
  if (s.lastExit) return `Error(Exited(Pid(${s.lastPid}), ${s.lastExit.code}))`;
  return `Error(${s.reason})`;
}

/** The zinit error code of each supervisor refusal about a service. */
const SUPERVISOR_RPC: Record<string, number> = {
  "supervisor.not-found": RPC.SERVICE_NOT_FOUND,
  "supervisor.exists": RPC.SERVICE_ALREADY_MONITORED,
  "supervisor.is-up": RPC.SERVICE_IS_UP,
  "supervisor.is-down": RPC.SERVICE_IS_DOWN,
  "supervisor.shutting-down": RPC.SHUTTING_DOWN,
};

/** A supervisor refusal about `name` as zinit words it. */
function mapError(e: unknown, name: string | undefined): never {
  if (isHeroError(e, "supervisor")) {
    const code = SUPERVISOR_RPC[e.code];
    if (code !== undefined && name !== undefined) throw serviceError(code, name);
    const err = controlError(
      e.code === "supervisor.config" ? RPC.CONFIG_ERROR : RPC.INTERNAL,
      e.message,
    );
    if (name !== undefined) err.detail.service = name;
    throw err;
  }
  throw e;
}

/** A method of the API taking a service name first: supervisor refusals become zinit's errors about it. */
function wrap<A extends unknown[], R>(
  fn: (name: string, ...a: A) => R,
): (name: string, ...a: A) => R {
  return (name: string, ...a: A) => {
    try {
      const r = fn(name, ...a);
      if (r instanceof Promise) return r.catch((e) => mapError(e, name)) as R;
      return r;
    } catch (e) {
      return mapError(e, name);
    }
  };
}

/** Pure: a signal zinit's `kill` accepts: a name, any case, with its SIG (zinit: nix's Signal::from_str). */
export function killSignal(sig: string): string | null {
  const up = sig.toUpperCase();
  return up.startsWith("SIG") && Object.hasOwn(SIGNALS, up) ? up : null;
}

/**
 * Creates `file` with `text`, all or nothing: a temp file in the same
 * directory, fsync, then link(2), which fails if the name exists (so a
 * concurrent create or a planted symlink is never overwritten), then fsync
 * the directory. On any error nothing is left behind.
 */
function createFile(file: string, text: string, name: string): void {
  const tmp = tempPathFor(file);
  const fd = openSync(tmp, "wx", 0o644);
  try {
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw alreadyExists(name);
    throw e;
  } finally {
    unlinkSync(tmp);
  }
  fsyncPath(dirname(file));
}

/** zinit's -32007 of service_create. */
const alreadyExists = (name: string) =>
  finalError(RPC.SERVICE_ALREADY_EXISTS, `creating service: Service '${name}' already exists`, {
    code_name: "ServiceAlreadyExists",
    action: "creating service file",
    service: name,
    hint: "Use a different name or delete the existing service first",
  });

/** zinit's -32000 of service_delete / service_get (a file, not a monitored service). */
const noFile = (verb: "deleting" | "getting", name: string) =>
  finalError(RPC.SERVICE_NOT_FOUND, `${verb} service: Service '${name}' not found`, {
    code_name: "ServiceNotFound",
    action: verb === "deleting" ? "deleting service file" : "reading service file",
    service: name,
    hint: "Ensure the service file exists",
  });

/** zinit's -32005: a file that does not load (monitor), is not YAML (get) or content that is no service (create). */
const configError = (message: string, action: string, name: string, hint: string, why: string) =>
  finalError(RPC.CONFIG_ERROR, message, {
    code_name: "ConfigError",
    action,
    service: name,
    hint,
    cause_chain: [why],
  });

/** zinit's -32008: the file could not be written, read or removed. */
const fileError = (action: string, name: string, detail: string, why: unknown) =>
  finalError(RPC.SERVICE_FILE_ERROR, `${action}: ${detail}`, {
    code_name: "ServiceFileError",
    action,
    service: name,
    hint: "Check permissions and filesystem availability",
    cause_chain: [(why as Error)?.message ?? String(why)],
  });

/** The file of a service for `action`; a name hero-init's file rules refuse is zinit's -32602. */
function fileOf(configDir: string, name: string, action: string): string {
  if (!SERVICE_NAME_RE.test(name)) throw invalidNameError(action, name);
  return join(configDir, `${name}.yaml`);
}

/** Builds the control API for a supervisor whose service files live in `configDir`. */
export function controlApi(
  sup: Supervisor,
  configDir: string,
  power: { shutdown(): void; reboot(): void },
): ControlApi {
  return {
    list: () => Object.fromEntries(sup.names().map((n) => [n, stateText(sup.status(n))])),
    status: wrap((name: string) => {
      const s = sup.status(name);
      return { name: s.name, pid: s.pid, state: stateText(s), target: s.target, after: s.after };
    }),
    start: wrap((name: string) => sup.start(name)),
    stop: wrap((name: string) => sup.stop(name)),
    restart: wrap((name: string) => sup.restart(name)),
    monitor: wrap((name: string) => monitorFile(sup, configDir, name)),
    forget: wrap((name: string) => sup.forget(name)),
    kill: wrap((name: string, signal: string) => {
      // zinit parses the signal before it looks the service up.
      const sig = killSignal(signal);
      if (!sig) throw invalidSignalError(signal);
      sup.kill(name, sig);
    }),
    shutdown: () => power.shutdown(),
    reboot: () => power.reboot(),
    create: (name, content) => createService(configDir, name, content),
    remove: wrap((name: string) => removeService(sup, configDir, name)),
    get: (name) => getService(configDir, name),
    stats: wrap(async (name: string) => {
      const s = sup.status(name);
      if (s.pid === 0) throw serviceError(RPC.SERVICE_IS_DOWN, name);
      const { main, children } = await processUsage(s.pid, groupPids(name));
      return { name, ...main, children };
    }),
    logs: (name?: string) =>
      sup.ring
        .since(0)
        .filter((l) => !name || l.service === name)
        .map(formatZinit),
    logRing: sup.ring,
  };
}

/** service_monitor: loads `name`'s file (any failure: zinit's -32005, the reason in cause_chain). */
function monitorFile(sup: Supervisor, configDir: string, name: string): void {
  const file = fileOf(configDir, name, "monitoring service");
  let spec: ServiceSpec;
  try {
    if (!existsSync(file)) throw new Error(`service file ${file} not found`);
    spec = parseServiceFile(readServiceText(file), file, (m) => log.warn("supervisor", m));
  } catch (e) {
    const why = isHeroError(e, "input") ? e.toString() : (e as Error).message;
    throw configError(
      `monitoring service: failed to load '${name}.yaml'`,
      "loading service config",
      name,
      "Verify the YAML file exists and is valid",
      why,
    );
  }
  sup.monitor(name, spec);
}

/** service_create: validated, bounded and read back as the loader will, before anything is written. */
function createService(configDir: string, name: string, content: ServiceSpecInput): string {
  const file = fileOf(configDir, name, "creating service");
  if (existsSync(file)) throw alreadyExists(name);
  let text: string;
  try {
    text = serviceFileText(content, file);
  } catch (e) {
    if (!isHeroError(e, "input")) throw e;
    throw configError(
      `creating service: ${e.toString()}`,
      "validating service config",
      name,
      "Ensure content is valid according to schema",
      e.toString(),
    );
  }
  try {
    createFile(file, text, name);
  } catch (e) {
    if (isHeroError(e, "control")) throw e;
    throw fileError("creating service file", name, "failed to create service file", e);
  }
  return `Service '${name}' created successfully`;
}

/** service_delete: the file of a service that is not up. */
function removeService(sup: Supervisor, configDir: string, name: string): string {
  const file = fileOf(configDir, name, "deleting service");
  if (!existsSync(file)) throw noFile("deleting", name);
  // hero-init's: zinit deletes the file of a running service too.
  if (sup.has(name) && sup.status(name).target === "Up")
    throw new HeroError("supervisor.is-up", `service '${name}' is up; stop it first`);
  try {
    unlinkSync(file);
  } catch (e) {
    throw fileError("deleting service file", name, "failed to delete service file", e);
  }
  return `Service '${name}' deleted successfully`;
}

/** service_get: the file as written (bounded like the loader: an alias bomb is refused, never expanded). */
function getService(configDir: string, name: string): Record<string, unknown> {
  const file = fileOf(configDir, name, "getting service");
  if (!existsSync(file)) throw noFile("getting", name);
  let text: string;
  try {
    text = readServiceText(file);
  } catch (e) {
    throw fileError("reading service file", name, "failed to read service file", e);
  }
  try {
    const raw = parseServiceYaml(text, file);
    if (!raw || typeof raw !== "object" || Array.isArray(raw))
      throw new HeroError("schema", "not a mapping", { file });
    return raw as Record<string, unknown>;
  } catch (e) {
    const why = isHeroError(e, "input") ? e.toString() : (e as Error).message;
    throw configError(
      "getting service: failed to parse YAML",
      "parsing service file",
      name,
      "Ensure the YAML is valid",
      why,
    );
  }
}
