/**
 * Reading a service file from a directory, the same way on the host (the
 * injector, `deploy --services DIR`) and in the guest (the supervisor's
 * loader, service_get, service_monitor): see {@link readServiceText}.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { HeroError } from "./errors.ts";
import { MAX_SERVICE_FILE } from "./service-spec.ts";

/**
 * Reads one service file: a regular file, not through a symlink (O_NOFOLLOW,
 * so nothing can be swapped in between a check and the read), never a FIFO
 * that would block (O_NONBLOCK), at most MAX_SERVICE_FILE bytes. Throws
 * HeroError naming the file.
 */
export function readServiceText(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP")
      throw new HeroError("not-regular", "is a symlink; only regular files are read", { file });
    if (code === "ENOENT") throw new HeroError("read", "no such file", { file });
    throw new HeroError("read", (e as Error).message, { file });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new HeroError(
        "not-regular",
        `is a ${st.isDirectory() ? "directory" : "special file"}; only regular files are read`,
        { file },
      );
    if (st.size > MAX_SERVICE_FILE)
      throw new HeroError("size", `file is ${st.size} bytes (limit ${MAX_SERVICE_FILE})`, {
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
        throw new HeroError("size", `file is over ${MAX_SERVICE_FILE} bytes`, { file });
    }
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}
