/**
 * `hero-init init` on the host with N idle services, for measuring or recording
 * `hero-init list` as a new process (bench/boot.ts, scripts/record-bytecode-order.ts).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "./poll.ts";

/** A running host supervisor: `list()` runs `hero-init -s SOCK list` once; dispose stops it. */
export interface HostSupervisor extends AsyncDisposable {
  list(env?: Record<string, string>): Bun.SyncSubprocess<"pipe", "pipe">;
}

/** Starts `hero` as `init` over `dir`/etc with `services` sleeping services; resolves once all list. */
export async function hostSupervisor(
  hero: string,
  dir: string,
  services = 10,
): Promise<HostSupervisor> {
  const etc = join(dir, "list-etc");
  mkdirSync(etc, { recursive: true });
  for (let i = 0; i < services; i++) writeFileSync(join(etc, `s${i}.yaml`), "exec: sleep 100000\n");
  const sock = join(dir, "list.sock");
  const sup = Bun.spawn([hero, "init", "-c", etc, "-s", sock], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const list = (env: Record<string, string> = {}) =>
    Bun.spawnSync([hero, "-s", sock, "list"], {
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
  const last = new RegExp(`^s${services - 1}:`, "m");
  try {
    await until(
      `the host supervisor to list its ${services} services`,
      () => last.test(list().stdout.toString()),
      30_000,
      100,
    );
  } catch (e) {
    sup.kill("SIGKILL");
    throw e;
  }
  return {
    list,
    async [Symbol.asyncDispose]() {
      sup.kill("SIGKILL");
      await sup.exited;
    },
  };
}
