/**
 * A free TCP port on 127.0.0.1 for a QEMU host forward (`hero-init job
 * run`, the VM test harness): bind port 0, read it, close. Another process
 * may take it before QEMU binds it; callers retry on QEMU's hostfwd error.
 */
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() =>
        typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no free port")),
      );
    });
  });
}
