/**
 * The UI as PID 1 runs it, in a process of its own, for
 * test/attack/ui-memory.test.ts to attack and measure: the real app
 * (createApp), bound by the real serveApp (Bun.serve, idle timeout and all),
 * over the real supervisor and its log ring, with a service logging lines of
 * 8,000 control characters (each escaped to six bytes in JSON): `flood`
 * writes them as fast as it can, forever (PID 1 takes them in at the pace
 * guest/supervisor/pace.ts allows); `ring` writes 600 of them (more than
 * the ring's 4 MiB of text holds) and then sleeps. No UI password: loopback
 * clients are read-only without logging in.
 *
 * Usage: bun test/attack/ui-server.ts flood|ring → prints `listening <port>`
 * once serving, then `ready` once the ring is full (`ring`: the service
 * wrote its last line; `flood`: the ring evicted its first line). Stops (and
 * its services with it) on SIGTERM or when its stdin closes, so it never
 * outlives the test that started it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSupervisor } from "../../guest/supervisor/supervisor.ts";
import { createApp } from "../../guest/ui/app.ts";
import { serveApp } from "../../guest/ui/serve.ts";
import { supervisorSource } from "../../guest/ui/source.ts";
import { parseServiceFile } from "../../lib/service-spec.ts";

const mode = process.argv[2];
if (mode !== "flood" && mode !== "ring") {
  console.error("usage: ui-server.ts flood|ring");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "ui-attack-"));
const line = "line=$(head -c 8000 /dev/zero | tr '\\0' '\\1')\n";
writeFileSync(
  join(dir, "logs.sh"),
  mode === "flood"
    ? `${line}exec yes "$line"\n`
    : `${line}yes "$line" | head -n 600\necho done; exec sleep 600\n`,
);
const sup = createSupervisor({ cgroups: false });
// `ready`: the baseline the test measures from is a full ring.
const unready = sup.ring.subscribe((l) => {
  // Full: the flood has lost its first line to the ring's bound.
  const full = mode === "ring" ? l.text === "done" : sup.ring.start("logs") > 0;
  if (l.service !== "logs" || !full) return;
  unready();
  console.log("ready");
});
sup.monitor("logs", parseServiceFile(`exec: sh ${join(dir, "logs.sh")}\n`, "logs.yaml"));
sup.monitor("quiet", parseServiceFile('exec: sh -c "echo hello; sleep 600"\n', "quiet.yaml"));

const app = createApp({
  hostname: () => "attack",
  uptime: () => process.uptime(),
  allow: [],
  source: supervisorSource(sup, { hostname: () => "attack", bootLog: () => [], cgroups: false }),
});
// A free port: serveApp binds the one it is given, as in PID 1.
const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
const port = probe.port;
probe.stop(true);
const listeners = serveApp(app, ["127.0.0.1"], port as number);
if (listeners.length === 0) {
  console.error(`cannot listen on 127.0.0.1:${port}`);
  process.exit(1);
}
console.log(`listening ${port}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  for (const l of listeners) l.stop();
  await sup.shutdownAll();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on("SIGTERM", stop);
// The test holds our stdin open: when it goes away (killed, timed out), so do we.
(async () => {
  for await (const _ of Bun.stdin.stream()) {
  }
  await stop();
})();
