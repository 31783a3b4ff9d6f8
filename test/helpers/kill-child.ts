/**
 * Test helper (update/kill.test.ts): runs one update in its own process and
 * SIGKILLs itself at the named step, or is killed by the test mid-download.
 * argv[2] is JSON: { source, paths, killAt?, throttleMs? }.
 */

import { runUpdate, type UpdatePaths, type UpdateSource } from "../../update/engine.ts";
import type { FetchFn } from "../../update/request.ts";

const cfg = JSON.parse(process.argv[2] ?? "{}") as {
  source: UpdateSource;
  paths: UpdatePaths;
  killAt?: string;
  throttleMs?: number;
};
/** Delays every body chunk, so the test can kill the process mid-download. */
const throttled: FetchFn = async (url, init) => {
  const res = await fetch(url, init);
  if (!res.body || !cfg.throttleMs) return res;
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      const { done, value } = await reader.read();
      if (done) return c.close();
      for (let i = 0; i < value.length; i += 65536) {
        await Bun.sleep(cfg.throttleMs ?? 0);
        c.enqueue(value.subarray(i, i + 65536));
      }
    },
  });
  return new Response(body, { status: res.status, headers: res.headers });
};
const r = await runUpdate(
  cfg.source,
  cfg.paths,
  {
    restart: async () => {},
    health: async () => [],
    log: () => {},
  },
  {
    fetch: throttled,
    onStep: (s) => {
      if (s === cfg.killAt) process.kill(process.pid, "SIGKILL");
    },
  },
);
console.log(JSON.stringify(r));
