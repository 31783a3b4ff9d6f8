/**
 * The update engine, the same code on nodes and in VMs. One run, in three
 * parts:
 *
 *  - trust (trust.ts): poll the manifest, verify its signature over the
 *    exact bytes (rotating keys when a trusted key signed a new set),
 *    refuse rollback and expired manifests → a verified manifest;
 *  - apply (apply.ts): plan the changes for this machine, download and
 *    check them, switch the `current` links, restart and health-check the
 *    affected services, clean up or roll back;
 *  - state (state.ts): what is kept on disk between runs (trusted version,
 *    validators, the verified copy, the pending install, failed versions,
 *    machine id) and what is installed.
 *
 * A kill -9 at any point leaves every install path resolving to a complete
 * binary, old or new: files appear by rename, links switch by rename
 * (lib/atomic-file.ts), and an install whose links were switched is
 * journalled as pending and finished by the next run.
 */
import { isHeroError, shortCode } from "../lib/errors.ts";
import { finishPending, install, planUpdate } from "./apply.ts";
import { applyMachineConfig } from "./config-files.ts";
import type { DownloadStats } from "./request.ts";
import { installedVersions, readState } from "./state.ts";
import { loadTrustRoot, verifiedManifest } from "./trust.ts";
import type {
  Run,
  UpdateHooks,
  UpdateOptions,
  UpdatePaths,
  UpdateResult,
  UpdateSource,
} from "./types.ts";

export { removeOtherVersions } from "./apply.ts";
export { markBad } from "./state.ts";
export type {
  UpdateHooks,
  UpdateOptions,
  UpdatePaths,
  UpdateResult,
  UpdateSource,
} from "./types.ts";

/** Runs one update. Never throws: every failure is in the result. */
export async function runUpdate(
  src: UpdateSource,
  paths: UpdatePaths,
  hooks: UpdateHooks,
  o: UpdateOptions = {},
): Promise<UpdateResult> {
  const res: UpdateResult = {
    outcome: "failed",
    changes: [],
    held: [],
    restarted: [],
    requests: 0,
    bytes: 0,
  };
  try {
    const run: Run = {
      src,
      paths,
      hooks,
      o,
      now: o.now ?? new Date(),
      state: readState(paths.stateDir),
      res,
      count(s: DownloadStats) {
        res.requests += s.requests;
        res.bytes += s.bytes;
      },
      async step(name: string) {
        await o.onStep?.(name);
      },
    };
    const root = loadTrustRoot(paths);
    let resumed = false;
    if (run.state.pending && !o.check) {
      hooks.log("finishing an update a previous run left half done");
      resumed = await finishPending(run);
      if (!resumed) return res;
    }
    const { manifest, status } = await verifiedManifest(run, root);
    res.manifestVersion = manifest.version;
    const plan = planUpdate(manifest, src, installedVersions(paths.pkgs), run.state.bad);
    res.held = plan.held;
    res.changes = plan.changes.map((c) => ({
      name: c.binary.name,
      from: c.from,
      to: c.binary.version,
      services: c.binary.services,
    }));
    if (plan.changes.length === 0) {
      res.outcome = resumed ? "updated" : status === 304 ? "unchanged" : "up-to-date";
    } else if (o.check) {
      res.outcome = "available";
    } else {
      await install(plan.changes, run);
    }
    // Config files and access converge on every run, a 304 included.
    if (res.outcome !== "rolled-back" && res.outcome !== "failed")
      await applyMachineConfig(manifest, run);
    return res;
  } catch (e) {
    return failed(res, e, hooks);
  }
}

/**
 * Fills in a failed run: "refused" for the trust rules' "trust.*" errors,
 * "failed" otherwise. `code` is the bare code ("rollback", "ENOENT",
 * "hash-mismatch"); signature errors never carried one.
 */
function failed(res: UpdateResult, e: unknown, hooks: UpdateHooks): UpdateResult {
  res.outcome = isHeroError(e, "trust") ? "refused" : "failed";
  const code = isHeroError(e) ? shortCode(e.code) : (e as { code?: string }).code;
  res.code = isHeroError(e, "signature") ? undefined : code;
  res.error = isHeroError(e, "signature")
    ? `manifest: ${e.message}`
    : ((e as Error).message ?? String(e));
  hooks.log(`update ${res.outcome}: ${res.error}`);
  return res;
}
