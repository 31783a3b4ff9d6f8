/**
 * Loads a zinit config directory: every *.yaml entry is a service named by
 * its stem. Only regular files are read: a symlink (which could point
 * anywhere, a file outside the directory included), a FIFO or a directory is
 * refused like any other bad file. A bad file is reported (file, line,
 * field) and shown as a service in Error; it never stops the others from
 * starting.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { HeroError, isHeroError } from "../../lib/errors.ts";
import { log } from "../../lib/log.ts";
import { readServiceText } from "../../lib/service-file.ts";
import { parseServiceFile, SERVICE_NAME_RE, type ServiceSpec } from "../../lib/service-spec.ts";
import type { Supervisor } from "./supervisor.ts";

/** One parsed file: a spec or the error that stops it. */
export type LoadedService = { name: string; file: string } & (
  | { spec: ServiceSpec }
  | { error: HeroError }
);

/** The service files' names in `dir` (`*.yaml`, sorted); none when it cannot be read. */
function serviceFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      log.error("supervisor", `${dir}: ${(e as Error).message}`);
    return [];
  }
}

/** Reads and parses one service file (`f` in `dir`): its spec, or the error that stops it. */
function loadServiceFile(dir: string, f: string): LoadedService {
  const file = join(dir, f);
  const name = f.slice(0, -".yaml".length);
  try {
    if (!SERVICE_NAME_RE.test(name))
      throw new HeroError("name", `"${name}" is not a valid service name`, { file });
    return {
      name,
      file,
      spec: parseServiceFile(readServiceText(file), file, (m) => log.warn("supervisor", m)),
    };
  } catch (e) {
    const err = isHeroError(e, "input") ? e : new HeroError("read", (e as Error).message, { file });
    return { name, file, error: err };
  }
}

/** Reads and parses every service file in `dir` (sorted by name). */
export function readServiceDir(dir: string): LoadedService[] {
  return serviceFiles(dir).map((f) => loadServiceFile(dir, f));
}

/** Monitors one loaded file: its service, or shown in Error; skipped when the name is taken. */
function monitorLoaded(sup: Supervisor, l: LoadedService): void {
  if (sup.has(l.name)) return;
  if ("error" in l) sup.addBroken(l.name, l.error);
  else sup.monitor(l.name, l.spec);
}

function logLoaded(dir: string, loaded: readonly LoadedService[]): void {
  log.info(
    "supervisor",
    `${loaded.length} service files in ${dir} (${loaded.filter((l) => "error" in l).length} invalid)`,
  );
}

/** Monitors every valid service in `dir`; shows the invalid ones in Error. */
export function monitorDir(sup: Supervisor, dir: string): LoadedService[] {
  const loaded = readServiceDir(dir);
  for (const l of loaded) monitorLoaded(sup, l);
  logLoaded(dir, loaded);
  return loaded;
}

/**
 * monitorDir, one file per turn of the event loop (PID 1's boot): reading
 * one and spawning its service costs 5-20 ms under TCG (100 for the first),
 * so a /health or control-socket request that comes while a dozen start is
 * answered between two of them instead of after all. Same result as
 * monitorDir once the promise resolves; a shutdown that starts meanwhile
 * stops it (the rest would be refused). The turn is a timer, not
 * setImmediate: with immediates, a request that came during boot was still
 * answered only after the first service (docs/benchmarks.md, session 11).
 */
export async function monitorDirGradually(sup: Supervisor, dir: string): Promise<LoadedService[]> {
  const loaded: LoadedService[] = [];
  for (const f of serviceFiles(dir)) {
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    if (sup.isShuttingDown()) {
      log.info("supervisor", `shutting down: the other service files in ${dir} are not loaded`);
      break;
    }
    const l = loadServiceFile(dir, f);
    loaded.push(l);
    monitorLoaded(sup, l);
  }
  logLoaded(dir, loaded);
  return loaded;
}
