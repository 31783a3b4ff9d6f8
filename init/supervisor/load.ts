/**
 * Loads a zinit config directory: every *.yaml entry is a service named by
 * its stem. Only regular files are read: a symlink (which could point
 * anywhere, a file outside the directory included), a FIFO or a directory is
 * refused like any other bad file. A bad file is reported (file, line,
 * field) and shown as a service in Error; it never stops the others from
 * starting.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../../lib/errors.ts";
import {
  MAX_SERVICE_FILE,
  parseServiceFile,
  SERVICE_NAME_RE,
  type ServiceSpec,
} from "../../lib/service-spec.ts";
import { log } from "../log.ts";
import type { Supervisor } from "./supervisor.ts";

/**
 * Reads one service file: a regular file, not through a symlink (O_NOFOLLOW,
 * so nothing can be swapped in between a check and the read), never a FIFO
 * that would block (O_NONBLOCK), at most MAX_SERVICE_FILE bytes. Throws
 * InputError naming the file.
 */
export function readServiceText(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP")
      throw new InputError("not-regular", "is a symlink; only regular files are read", { file });
    if (code === "ENOENT") throw new InputError("read", "no such file", { file });
    throw new InputError("read", (e as Error).message, { file });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new InputError(
        "not-regular",
        `is a ${st.isDirectory() ? "directory" : "special file"}; only regular files are read`,
        { file },
      );
    if (st.size > MAX_SERVICE_FILE)
      throw new InputError("size", `file is ${st.size} bytes (limit ${MAX_SERVICE_FILE})`, {
        file,
      });
    // One byte more than the limit: a file that grew since fstat is still refused.
    const buf = Buffer.allocUnsafe(MAX_SERVICE_FILE + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === buf.length)
        throw new InputError("size", `file is over ${MAX_SERVICE_FILE} bytes`, { file });
    }
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

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
      if (!SERVICE_NAME_RE.test(name))
        throw new InputError("name", `"${name}" is not a valid service name`, { file });
      out.push({
        name,
        file,
        spec: parseServiceFile(readServiceText(file), file, (m) => log.warn("supervisor", m)),
      });
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
