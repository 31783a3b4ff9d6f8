/**
 * The ControlApi over a Supervisor: zinit's shapes for list/status/stats,
 * service files for create/delete/get/monitor, and the ring for logs.
 * Shared by the control socket and (later) the UI.
 */
import { randomBytes } from "node:crypto";
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
import { HeroError, isHeroError } from "../../lib/errors.ts";
import { log } from "../../lib/log.ts";
import { readServiceText } from "../../lib/service-file.ts";
import {
  parseServiceFile,
  parseServiceYaml,
  SERVICE_NAME_RE,
  type ServiceSpecInput,
  serviceFileText,
} from "../../lib/service-spec.ts";
import { groupPids, groupStats } from "../supervisor/cgroup.ts";
import { formatZinit } from "../supervisor/logs.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { type ControlApi, controlError, RPC } from "./protocol.ts";

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

/** The zinit error code of each supervisor refusal. */
const SUPERVISOR_RPC: Record<string, number> = {
  "supervisor.not-found": RPC.SERVICE_NOT_FOUND,
  "supervisor.exists": RPC.SERVICE_ALREADY_MONITORED,
  "supervisor.is-up": RPC.SERVICE_IS_UP,
  "supervisor.shutting-down": RPC.SHUTTING_DOWN,
  "supervisor.config": RPC.CONFIG_ERROR,
  "supervisor.bad-signal": RPC.INVALID_SIGNAL,
};

function mapError(e: unknown): never {
  if (isHeroError(e, "supervisor"))
    throw controlError(SUPERVISOR_RPC[e.code] ?? RPC.INTERNAL, e.message);
  if (isHeroError(e, "input")) throw controlError(RPC.SERVICE_FILE_ERROR, e.toString());
  throw e;
}

function wrap<A extends unknown[], R>(fn: (...a: A) => R): (...a: A) => R {
  return (...a: A) => {
    try {
      const r = fn(...a);
      if (r instanceof Promise) return r.catch(mapError) as R;
      return r;
    } catch (e) {
      return mapError(e);
    }
  };
}

/**
 * Creates `file` with `text`, all or nothing: a temp file in the same
 * directory, fsync, then link(2), which fails if the name exists (so a
 * concurrent create or a planted symlink is never overwritten), then fsync
 * the directory. On any error nothing is left behind.
 */
function createFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
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
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw controlError(RPC.SERVICE_ALREADY_EXISTS, `service file ${file} already exists`);
    throw e;
  } finally {
    unlinkSync(tmp);
  }
  const dfd = openSync(dirname(file), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function checkName(name: string): void {
  if (!SERVICE_NAME_RE.test(name))
    throw controlError(RPC.INVALID_PARAMS, `invalid service name "${name}"`);
}

/** Builds the control API for a supervisor whose service files live in `configDir`. */
export function controlApi(
  sup: Supervisor,
  configDir: string,
  power: { shutdown(): void; reboot(): void },
): ControlApi {
  const fileOf = (name: string) => {
    checkName(name);
    return join(configDir, `${name}.yaml`);
  };
  return {
    list: wrap(() =>
      Object.fromEntries(
        sup.names().map((n) => {
          const s = sup.status(n);
          return [n, stateText(s)];
        }),
      ),
    ),
    status: wrap((name: string) => {
      const s = sup.status(name);
      return {
        name: s.name,
        pid: s.pid,
        state: stateText(s),
        target: s.target,
        after: s.after,
      };
    }),
    start: wrap((name: string) => sup.start(name)),
    stop: wrap((name: string) => sup.stop(name)),
    restart: wrap((name: string) => sup.restart(name)),
    monitor: wrap((name: string) => {
      const file = fileOf(name);
      if (!existsSync(file))
        throw new HeroError("supervisor.not-found", `service file ${file} not found`);
      sup.monitor(
        name,
        parseServiceFile(readServiceText(file), file, (m) => log.warn("supervisor", m)),
      );
    }),
    forget: wrap((name: string) => sup.forget(name)),
    kill: wrap((name: string, signal: string) => sup.kill(name, signal)),
    shutdown: () => power.shutdown(),
    reboot: () => power.reboot(),
    create: wrap((name: string, content: ServiceSpecInput) => {
      const file = fileOf(name);
      if (existsSync(file))
        throw controlError(RPC.SERVICE_ALREADY_EXISTS, `service '${name}' already exists`);
      // Validated, bounded and read back as the loader will, before anything is written.
      createFile(file, serviceFileText(content, file));
      return `Service '${name}' created successfully`;
    }),
    remove: wrap((name: string) => {
      const file = fileOf(name);
      if (!existsSync(file))
        throw controlError(RPC.SERVICE_NOT_FOUND, `service '${name}' not found`);
      if (sup.has(name) && sup.status(name).target === "Up")
        throw new HeroError("supervisor.is-up", `service '${name}' is up; stop it first`);
      unlinkSync(file);
      return `Service '${name}' deleted successfully`;
    }),
    get: wrap((name: string) => {
      const file = fileOf(name);
      if (!existsSync(file))
        throw controlError(RPC.SERVICE_NOT_FOUND, `service '${name}' not found`);
      // Bounded like the loader: an alias bomb is refused, never expanded into the reply.
      const raw = parseServiceYaml(readServiceText(file), file);
      if (!raw || typeof raw !== "object" || Array.isArray(raw))
        throw new HeroError("schema", "not a mapping", { file });
      return raw as Record<string, unknown>;
    }),
    stats: wrap((name: string) => {
      const s = sup.status(name);
      const g = groupStats(name);
      return {
        name,
        pid: s.pid,
        memory_usage: g.memoryBytes ?? 0,
        cpu_usage: g.cpuUsec ?? 0,
        children: groupPids(name)
          .filter((p) => p !== s.pid)
          .map((pid) => ({ pid })),
      };
    }),
    logs: (name?: string) =>
      sup.ring
        .since(0)
        .filter((l) => !name || l.service === name)
        .map(formatZinit),
    logRing: sup.ring,
  };
}
