/**
 * `hero-init serve DIR [--listen ADDR:PORT]`: the bootstrap server
 * (update/serve.ts). Serves DIR until SIGINT/SIGTERM; one access-log line
 * per request on stdout. See docs/bootstrap-server.md.
 */
import { defineCommand } from "citty";
import { isHeroError } from "../lib/errors.ts";
import { parseListen } from "../update/http.ts";
import { startServer } from "../update/serve.ts";
import type { Command } from "./run.ts";

const serveCommand = defineCommand({
  meta: {
    name: "serve",
    description: "serve manifests and binaries (the bootstrap server) until SIGINT/SIGTERM",
  },
  args: {
    dir: { type: "positional", required: true, description: "the directory to serve" },
    listen: {
      type: "string",
      alias: "l",
      default: "[::]:8080",
      valueHint: "addr:port",
      description: "address and port to listen on",
    },
  },
  async run({ args: a }) {
    try {
      const { hostname, port } = parseListen(a.listen);
      const server = startServer({ dir: a.dir, hostname, port });
      process.stdout.write(`hero-init serve: serving ${a.dir} on ${server.url}\n`);
      return await new Promise<number>((resolve) => {
        const stop = (sig: string) => {
          process.stdout.write(`hero-init serve: ${sig}, stopping\n`);
          server.stop().then(() => resolve(0));
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
    } catch (e) {
      const msg = isHeroError(e, "input") ? e.toString() : (e as Error).message;
      process.stderr.write(`hero-init serve: ${msg}\n`);
      return 1;
    }
  },
});

/** `hero-init serve`. */
export const serve: Command = serveCommand;
