/**
 * `hero-init serve DIR [--listen ADDR:PORT]`: the bootstrap server
 * (update/serve.ts). Serves DIR until SIGINT/SIGTERM; one access-log line
 * per request on stdout. See docs/bootstrap-server.md.
 */
import { InputError } from "../lib/errors.ts";
import { parseListen } from "../update/http.ts";
import { startServer } from "../update/serve.ts";

const USAGE = "usage: hero-init serve DIR [--listen ADDR:PORT]   (default [::]:8080)\n";

/** Runs the server; resolves with the exit code once stopped by a signal. */
export async function runServe(args: string[]): Promise<number> {
  let dir: string | undefined;
  let listen = "[::]:8080";
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--listen" || a === "-l") listen = args[++i] ?? "";
    else if (a.startsWith("--listen=")) listen = a.slice("--listen=".length);
    else if (a === "-h" || a === "--help") {
      process.stdout.write(USAGE);
      return 0;
    } else if (!a.startsWith("-") && dir === undefined) dir = a;
    else {
      process.stderr.write(`hero-init serve: unexpected argument "${a}"\n${USAGE}`);
      return 2;
    }
  }
  if (!dir) {
    process.stderr.write(USAGE);
    return 2;
  }
  try {
    const { hostname, port } = parseListen(listen);
    const server = startServer({ dir, hostname, port });
    process.stdout.write(`hero-init serve: serving ${dir} on ${server.url}\n`);
    return await new Promise<number>((resolve) => {
      const stop = (sig: string) => {
        process.stdout.write(`hero-init serve: ${sig}, stopping\n`);
        server.stop().then(() => resolve(0));
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });
  } catch (e) {
    const msg = e instanceof InputError ? e.toString() : (e as Error).message;
    process.stderr.write(`hero-init serve: ${msg}\n`);
    return 1;
  }
}
