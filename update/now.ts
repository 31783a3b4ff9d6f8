/**
 * "Update now": the one mechanism behind every trigger of an update pass
 * outside the timer's own schedule: the UI's and the API's buttons, `hero-init
 * update`, and `hero-init node register` (seed 000: "updates run on every
 * node_register", before hardware detection). Each caller hands
 * {@link updateNow} a {@link UpdatePass}: in a VM that is PID 1's updater
 * (one pass at a time inside PID 1), on a node {@link nodePass} (one pass at a
 * time per state directory, across processes: the timer's run and a
 * registration's run never overlap).
 *
 * A bounded wait: the caller gets the pass's result, or after `timeoutMs`
 * `{ timedOut: true }` while the pass goes on in the background (a node
 * registration must continue even when a download is slow).
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { HeroError } from "../lib/errors.ts";
import type { UpdateResult } from "./types.ts";

/** What can run an update pass: PID 1's updater, a node's locked engine run, a control-socket client. */
export interface UpdatePass<R = UpdateResult> {
  check(): Promise<R>;
  apply(): Promise<R>;
}

/** The answer of {@link updateNow}. */
export type NowResult<R = UpdateResult> = { timedOut: false; result: R } | { timedOut: true };

/** Outcomes that mean the pass did not leave the machine on the manifest. */
export const FAILED_OUTCOMES: ReadonlySet<UpdateResult["outcome"]> = new Set([
  "refused",
  "failed",
  "rolled-back",
]);

/** Runs one pass (apply, or check only) and waits for it at most `timeoutMs` (none: until done). */
export async function updateNow<R = UpdateResult>(
  pass: UpdatePass<R>,
  o: { check?: boolean; timeoutMs?: number } = {},
): Promise<NowResult<R>> {
  const running = o.check ? pass.check() : pass.apply();
  if (o.timeoutMs === undefined) return { timedOut: false, result: await running };
  if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)
    throw new HeroError("update.timeout", `timeout ${o.timeoutMs} ms is not a positive number`);
  let timer: Timer | undefined;
  const late = new Promise<NowResult<R>>((r) => {
    timer = setTimeout(() => r({ timedOut: true }), o.timeoutMs);
  });
  try {
    return await Promise.race([
      running.then((result) => ({ timedOut: false, result }) as const),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Removes `dir` and its parents up to `top` (included) while they are empty. */
function removeEmptyUpTo(dir: string, top: string): void {
  for (let d = dir; d.length >= top.length; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (the run wrote its state) or gone
    }
    if (d === top) return;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Takes `<stateDir>/pass.lock` (created exclusively, holding our pid),
 * waiting while another live process holds it; a lock whose process is gone
 * is taken over. Resolves with the release function.
 */
export async function takePassLock(
  stateDir: string,
  o: { waitMs?: number; pollMs?: number; pid?: number } = {},
): Promise<() => void> {
  const file = join(stateDir, "pass.lock");
  const end = Date.now() + (o.waitMs ?? 30 * 60_000);
  const pid = o.pid ?? process.pid;
  // A refused first run must leave no trace: directories made for the lock
  // alone are removed again when they are still empty.
  const made = mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  for (;;) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      return () => {
        rmSync(file, { force: true });
        if (made) removeEmptyUpTo(stateDir, made);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder = 0;
    try {
      holder = Number.parseInt(readFileSync(file, "utf8"), 10);
    } catch {
      continue; // released between our open and read
    }
    if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > end)
      throw new HeroError("update.locked", `another update pass (pid ${holder}) holds ${file}`);
    await Bun.sleep(o.pollMs ?? 250);
  }
}

/**
 * A node's pass: `run(check)` is one engine run; concurrent passes of this
 * process share one run, and passes of other processes wait for the lock.
 */
export function nodePass(
  stateDir: string,
  run: (check: boolean) => Promise<UpdateResult>,
): UpdatePass {
  const current: { check?: Promise<UpdateResult>; apply?: Promise<UpdateResult> } = {};
  const once = (check: boolean) => {
    const k = check ? "check" : "apply";
    current[k] ??= (async () => {
      const release = await takePassLock(stateDir);
      try {
        return await run(check);
      } finally {
        release();
      }
    })().finally(() => {
      current[k] = undefined;
    });
    return current[k];
  };
  return { check: () => once(true), apply: () => once(false) };
}
