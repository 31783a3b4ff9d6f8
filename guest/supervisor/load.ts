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

/** Reads and parses every service file in `dir` (sorted by name). */
export function readServiceDir(dir: string): LoadedService[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      log.error("supervisor", `${dir}: ${(e as Error).message}`);
    return [];
  }
  const out: LoadedService[] = [];
  for (const f of names) {
    const file = join(dir, f);
    const name = f.slice(0, -".yaml".length);
    try {
      if (!SERVICE_NAME_RE.test(name))
        throw new HeroError("name", `"${name}" is not a valid service name`, { file });
      out.push({
        name,
        file,
        spec: parseServiceFile(readServiceText(file), file, (m) => log.warn("supervisor", m)),
      });
    } catch (e) {
      const err = isHeroError(e, "input")
        ? e
        : new HeroError("read", (e as Error).message, { file });
      out.push({ name, file, error: err });
    }
  }
  return out;
}

/** Monitors every valid service in `dir`; shows the invalid ones in Error. */
export function monitorDir(sup: Supervisor, dir: string): LoadedService[] {
  const loaded = readServiceDir(dir);
  for (const l of loaded) {
    if (sup.has(l.name)) continue;
    if ("error" in l) sup.addBroken(l.name, l.error);
    else sup.monitor(l.name, l.spec);
  }
  log.info(
    "supervisor",
    `${loaded.length} service files in ${dir} (${loaded.filter((l) => "error" in l).length} invalid)`,
  );
  return loaded;
}
