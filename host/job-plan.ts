/**
 * What `hero-init job run` checks and adds before it deploys a job VM
 * (pure): the job's config must validate (an invalid one is refused on the
 * host, exit 3, before anything boots), its token may not outlive the
 * expiry cap, and the VM gets what the host needs to talk to it: eth0 on
 * QEMU's user network and the agent reachable from the host's forward
 * (10.0.2.2, QEMU's fixed host address; nothing else reaches a user-mode
 * network). Several copies of one job get distinct names. A token problem
 * is a HeroError "job-token" (the command exits 1, as the guest would), any
 * other problem an input error (exit 3, runner configuration error).
 */
import { HeroError } from "../lib/errors.ts";
import { type VmConfigInput, validateVmConfig } from "../lib/vm-config.ts";

/** The default cap on a token's lifetime (seed 004: registration tokens live one hour at most). */
export const DEFAULT_EXPIRY_CAP_MS = 3600_000;

/** Pure: the job VM's config, or a HeroError (input) naming what is wrong. */
export function jobVmConfig(
  vm: VmConfigInput,
  now: Date,
  expiryCapMs = DEFAULT_EXPIRY_CAP_MS,
): VmConfigInput {
  if (!vm.job)
    throw new HeroError("job", "the config has no [job] section: nothing to run", {
      field: "job",
    });
  const out: VmConfigInput = { ...vm };
  if (!out.network?.interfaces?.length)
    out.network = {
      ...(out.network ?? {}),
      dns: out.network?.dns ?? ["10.0.2.3"],
      interfaces: [{ name: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2" }],
    };
  out.agent = {
    ...(out.agent ?? {}),
    listen: [...new Set([...(out.agent?.listen ?? []), "0.0.0.0"])],
    allow: [...new Set([...(out.agent?.allow ?? []), "10.0.2.2/32"])],
  };
  out.modules = [...new Set([...(out.modules ?? []), "virtio_pci", "virtio_net"])];
  const { config, errors } = validateVmConfig(out, "job config");
  const first = errors[0];
  if (first)
    // On the host nothing falls back to a default: the job is refused.
    throw new HeroError(
      first.code,
      first.message.replace(/; using the default for \[[^\]]*\]$/, ""),
      first.where,
    );
  const expires = config.job?.expires;
  if (expires && expires.getTime() > now.getTime() + expiryCapMs)
    throw new HeroError(
      "job-token",
      `[job] expires = ${expires.toISOString()} is more than ${expiryCapMs / 60_000} min away: job tokens are short-lived (the cap is --expiry-cap)`,
      { field: "job.expires" },
    );
  if (expires && expires.getTime() <= now.getTime())
    throw new HeroError("job-token", `[job] expires = ${expires.toISOString()} has passed`, {
      field: "job.expires",
    });
  return out;
}

/** Pure: copy `i` (1-based) of `count` of a job: its name, and its runner's name if it registers one. */
export function jobCopy(
  name: string,
  vm: VmConfigInput,
  i: number,
  count: number,
): { name: string; vm: VmConfigInput } {
  if (count === 1) return { name, vm };
  const reg = vm.job?.registration;
  const job = vm.job && {
    ...vm.job,
    ...(reg ? { registration: { ...reg, runner_name: `${reg.runner_name}-${i}` } } : {}),
  };
  return { name: `${name}-${i}`, vm: { ...vm, ...(job ? { job } : {}) } };
}
