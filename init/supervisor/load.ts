/**
 * Loads a zinit config directory: every regular *.yaml file is a service
 * named by its stem. A bad file is reported (file, line, field) and shown as
 * a service in Error; it never stops the others from starting.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../../lib/errors.ts";
import { parseServiceFile, SERVICE_NAME_RE, type ServiceSpec } from "../../lib/service-spec.ts";
import { log } from "../log.ts";
import type { Supervisor } from "./supervisor.ts";

/** Max size of one service file; a larger one is refused, not read. */
const MAX_FILE = 256 * 1024;

/** One parsed file: a spec or the error that stops it. */
export type LoadedService = { name: string; file: string } & (
  | { spec: ServiceSpec }
  | { error: InputError }
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
      const st = statSync(file);
      if (!st.isFile()) continue;
      if (!SERVICE_NAME_RE.test(name))
        throw new InputError("name", `"${name}" is not a valid service name`, { file });
      if (st.size > MAX_FILE)
        throw new InputError("size", `file is ${st.size} bytes (limit ${MAX_FILE})`, { file });
      out.push({ name, file, spec: parseServiceFile(readFileSync(file, "utf8"), file) });
    } catch (e) {
      const err =
        e instanceof InputError ? e : new InputError("read", (e as Error).message, { file });
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
