/**
 * The deployment environments, apart from lib/manifest.ts so that vm.toml's
 * schema (evaluated by PID 1 before READY) does not pull in the manifest's.
 */

/** The deployment environments (seed 002), from least to most conservative. */
export const ENVIRONMENTS = ["dev", "testing", "canary", "production"] as const;
/** One of {@link ENVIRONMENTS}. */
export type Environment = (typeof ENVIRONMENTS)[number];
