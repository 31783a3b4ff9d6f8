/**
 * UI benchmark: requests/s and p99 latency of GET /api/v1/services (20
 * supervised services, real supervisor and UiSource) on loopback, alone and
 * with 200 SSE log followers attached while every service logs; memory the
 * UI adds. Baseline, same run: a bare Bun.serve answering the same JSON
 * precomputed (no Hono, no auth, no supervisor read) — the ratio is what the
 * app's routing, ACL, session and state read cost.
 *
 * The load generator runs in a separate process (bench/ui-load.ts) so it
 * does not share the server's event loop. Run: bun bench/ui.ts
 */
import { join } from "node:path";
import { createSupervisor } from "../guest/supervisor/supervisor.ts";
import { createApp } from "../guest/ui/app.ts";
import { supervisorSource } from "../guest/ui/source.ts";
import { parseServiceFile } from "../lib/service-spec.ts";
import { out, printRatios, ratio } from "./lib.ts";

const SERVICES = 20;
const DURATION_S = Number(process.env.BENCH_SECONDS ?? 8);
const CONNS = 16;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string): Promise<Load> {
  const p = Bun.spawn(
    [process.execPath, join(import.meta.dir, "ui-load.ts"), url, String(DURATION_S), String(CONNS)],
    { stdout: "pipe", stderr: "inherit" },
  );
  const text = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(text) as Load;
}

const rssMB = () => process.memoryUsage().rss / 1024 / 1024;

const sup = createSupervisor({ cgroups: false, ringSize: 2000 });
for (let i = 0; i < SERVICES; i++)
  sup.monitor(
    `svc${i}`,
    parseServiceFile(
      `exec: sh -c "while true; do echo line from ${i}; sleep 0.5; done"\n`,
      `svc${i}.yaml`,
    ),
  );
await Bun.sleep(1000);
Bun.gc(true);
const before = rssMB();
const app = createApp({
  hostname: () => "bench",
  uptime: () => 1,
  allow: [],
  source: supervisorSource(sup, { hostname: () => "bench", bootLog: () => [], cgroups: false }),
  maxFollowers: 256,
});
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 255,
  fetch: (req, srv) => app.fetch(req, srv),
});
const url = `http://127.0.0.1:${server.port}/api/v1/services`;
const sample = await (await fetch(url)).text();
const bare = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: () => new Response(sample, { headers: { "content-type": "application/json" } }),
});

const base = await load(`http://127.0.0.1:${bare.port}/`);
const alone = await load(url);
Bun.gc(true);
const afterLoad = rssMB();

// 200 SSE followers of all logs.
const followers: AbortController[] = [];
let events = 0;
for (let i = 0; i < 200; i++) {
  const ac = new AbortController();
  followers.push(ac);
  fetch(`http://127.0.0.1:${server.port}/api/v1/logs`, {
    headers: { accept: "text/event-stream" },
    signal: ac.signal,
  })
    .then(async (r) => {
      for await (const chunk of r.body as ReadableStream<Uint8Array>)
        events += new TextDecoder().decode(chunk).split("\nevent: log").length - 1;
    })
    .catch(() => {});
}
await Bun.sleep(1500);
const withSse = await load(url);
Bun.gc(true);
const withFollowers = rssMB();
for (const f of followers) f.abort();

out("services", SERVICES);
out("load_seconds_each", DURATION_S);
out("load_connections", CONNS);
out("baseline_bare_bun_serve_rps", base.rps);
out("baseline_bare_bun_serve_p99_ms", base.p99);
out("api_services_rps", alone.rps);
out("api_services_p50_ms", alone.p50);
out("api_services_p99_ms", alone.p99);
out("api_services_errors", alone.errors);
out("api_services_with_200_sse_rps", withSse.rps);
out("api_services_with_200_sse_p99_ms", withSse.p99);
out("sse_events_delivered_during_load", events);
out("rss_before_ui_mb", before);
out("rss_after_ui_and_load_mb", afterLoad);
out("rss_with_200_sse_mb", withFollowers);
out("ui_added_rss_mb", afterLoad - before);
out("sse_200_added_rss_mb", withFollowers - afterLoad);
ratio("ratio_api_rps_vs_bare_bun_serve", alone.rps / base.rps);
ratio("ratio_api_p99_with_200_sse_vs_without", withSse.p99 / alone.p99);
printRatios();
server.stop(true);
bare.stop(true);
await sup.shutdownAll();
process.exit(0);
