/**
 * The update engine's public types (re-exported by engine.ts, where callers
 * import them) and the context one run hands to its parts, trust.ts and
 * apply.ts.
 */
import type { Change, Environment } from "../lib/manifest.ts";
import type { DownloadOptions } from "./download.ts";
import type { DownloadStats, FetchFn } from "./request.ts";
import type { State } from "./state.ts";

/** Where things live (absolute paths; tests point them into a temp dir). */
export interface UpdatePaths {
  /** The versioned store: <pkgs>/<name>/<version>/<name> and <pkgs>/<name>/current. */
  pkgs: string;
  /** Prefix for a binary's install path (`/usr/bin/<name>` or its `path`): "" on a real system. */
  root: string;
  /** State: last trusted version, validators, the last verified manifest. */
  stateDir: string;
  /** The trusted public keys, one minisign public key per line (comments allowed). */
  keysFile: string;
  /**
   * The configured key (`[update] key`): seeds `keysFile` when it does not
   * exist yet; a signed rotation replaces the file later, never the config.
   */
  seedKey?: string;
}

/** What to follow. */
export interface UpdateSource {
  manifestUrl: string;
  /** Default: `<manifestUrl>.minisig`. */
  signatureUrl?: string;
  /** Key rotation document; default: keys.toml beside the manifest (+ .minisig). */
  keysUrl?: string;
  role: "node" | "vm";
  env?: Environment;
  pins?: string[];
  machineId: string;
}

/** What the engine asks of its host (the supervisor in PID 1, systemd or zinit on a node). */
export interface UpdateHooks {
  /** Restart these services (the binaries they run changed). */
  restart(services: string[]): Promise<void>;
  /** After a restart: the services that are not healthy (empty = healthy). */
  health(services: string[]): Promise<string[]>;
  /** hero-init itself changed: switch to `path` (PID 1 re-execs; a CLI just reports). */
  selfUpdate?(path: string, change: Change): Promise<void>;
  /**
   * The environment's access section was applied: sshd should run (or
   * not); `changed`: its config changed (restart it to be sure).
   */
  sshd?(run: boolean, changed: boolean): Promise<void>;
  /**
   * The access section removed these users or revoked one of their keys:
   * end their open sessions (every process of the uid; sys/processes.ts).
   */
  endSessions?(users: { name: string; uid: number }[]): Promise<void>;
  log(msg: string): void;
}

/** Knobs, mostly for tests and benchmarks. */
export interface UpdateOptions {
  /** Only report what would change (`hero-init update --check`). */
  check?: boolean;
  fetch?: FetchFn;
  /** The run's fixed clock (default: now). */
  now?: Date;
  download?: Partial<Omit<DownloadOptions, "expectSize" | "sha256">>;
  /** Extra free bytes to keep beyond the downloads (default 16 MiB). */
  spareBytes?: number;
  /** Called at each step (tests kill the process here). */
  onStep?(step: string): void | Promise<void>;
}

/** The outcome of one run. */
export interface UpdateResult {
  outcome:
    | "unchanged"
    | "up-to-date"
    | "available"
    | "updated"
    | "rolled-back"
    | "refused"
    | "failed";
  manifestVersion?: number;
  changes: { name: string; from?: string; to: string; services: string[] }[];
  held: { name: string; version: string; reason: string }[];
  restarted: string[];
  /** The environment's access section, applied (update/access.ts); absent when none. */
  access?: { env: string; changed: string[]; users: string[]; sshd: boolean; ended?: string[] };
  /** Config files written (update/config-files.ts). */
  files?: { changed: string[]; restarted: string[] };
  error?: string;
  code?: string;
  requests: number;
  bytes: number;
}

/** One run as its parts see it: the inputs, the state read at its start, the result being built. */
export interface Run {
  src: UpdateSource;
  paths: UpdatePaths;
  hooks: UpdateHooks;
  o: UpdateOptions;
  /** The run's fixed clock (expiry is judged against it). */
  now: Date;
  /** state.json as read at the start; parts change it and write it back. */
  state: State;
  res: UpdateResult;
  /** Adds a request's cost to the result. */
  count(s: DownloadStats): void;
  /** Announces a step (`onStep`: tests kill the process there). */
  step(name: string): Promise<void>;
}
