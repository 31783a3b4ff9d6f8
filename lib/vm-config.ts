/**
 * The per-VM configuration, /etc/hero-init/vm.toml: written by the host
 * injector, read by PID 1 at boot. One schema for both sides.
 *
 * A bad config never bricks a VM: {@link loadVmConfig} reports every problem
 * (file, line, field, reason) and drops only the offending top-level section,
 * falling back to its defaults, so a typo in `[ui]` still boots with the
 * right hostname and network.
 */

import ipaddr from "ipaddr.js";
import * as v from "valibot";
import { ENVIRONMENTS } from "./environments.ts";
import { HeroError, isHeroError } from "./errors.ts";
import { IdentitySchema } from "./identity.ts";
import { LAYOUT } from "./layout.ts";
import { isPeerUri } from "./peer-uri.ts";
import { locateKey, parseToml } from "./toml.ts";

const hostnameRe =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const ifnameRe = /^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,14}$/;
const moduleRe = /^[a-zA-Z0-9_-]{1,64}$/;
const ipv4Re = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

const Ipv4 = v.pipe(v.string(), v.regex(ipv4Re, "must be an IPv4 address like 10.0.2.2"));
const Cidr4 = v.pipe(
  v.string(),
  v.check((s) => {
    const [ip, len, ...rest] = s.split("/");
    const n = Number(len);
    return rest.length === 0 && ipv4Re.test(ip ?? "") && Number.isInteger(n) && n >= 0 && n <= 32;
  }, "must be an IPv4 address with prefix, like 10.0.2.15/24"),
);

/** One network interface: a static address, or `dhcp = true` (docs/images.md). */
export const InterfaceSchema = v.pipe(
  v.strictObject({
    name: v.pipe(v.string(), v.regex(ifnameRe, "must be an interface name like eth0")),
    /** IPv4 from DHCP (and IPv6 router advertisements accepted); excludes address and gateway. */
    dhcp: v.optional(v.boolean()),
    address: v.optional(Cidr4),
    gateway: v.optional(Ipv4),
    /** A static IPv6 address with prefix, e.g. "2001:db8:1::2/64". */
    address6: v.optional(
      v.pipe(
        v.string(),
        v.check((s) => {
          const [ip, len, ...rest] = s.split("/");
          const n = Number(len);
          return (
            rest.length === 0 &&
            ipaddr.IPv6.isValid(ip ?? "") &&
            Number.isInteger(n) &&
            n >= 1 &&
            n <= 128
          );
        }, "must be an IPv6 address with prefix, like 2001:db8::2/64"),
      ),
    ),
    mtu: v.optional(v.pipe(v.number(), v.integer(), v.minValue(576), v.maxValue(65535))),
  }),
  v.check(
    (i) => !(i.dhcp && (i.address || i.gateway)),
    "dhcp = true takes the address and gateway from the lease: remove address/gateway, or dhcp",
  ),
);

const NetworkSchema = v.strictObject({
  interfaces: v.optional(v.array(InterfaceSchema), []),
  dns: v.optional(v.array(Ipv4), []),
  search: v.optional(v.array(v.pipe(v.string(), v.regex(hostnameRe, "must be a domain"))), []),
});

const UiSchema = v.strictObject({
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)), 9999),
  /** Extra addresses to listen on besides loopback (and mycelium). */
  listen: v.optional(v.array(v.string()), []),
  /** Extra client CIDRs allowed besides loopback and 400::/7. */
  allow: v.optional(v.array(v.string()), []),
  /** Hash (Bun.password: argon2id/bcrypt PHC string) of the admin password; none: read-only on loopback. */
  password_hash: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^\$(argon2(id|i|d)|2[aby])\$/,
        "must be a password hash (argon2 or bcrypt), never a plain password",
      ),
    ),
  ),
  /** Hash of a read-only password (optional second role). */
  readonly_password_hash: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^\$(argon2(id|i|d)|2[aby])\$/,
        "must be a password hash (argon2 or bcrypt), never a plain password",
      ),
    ),
  ),
  /** The debug web terminal: off unless set (admins only, allowed addresses only). */
  terminal: v.optional(v.boolean(), false),
  /**
   * Who may open the debug terminal besides loopback: mycelium addresses or
   * subnets of named debugger nodes (default none). The admin password is
   * needed as well.
   */
  terminal_allow: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.check((s) => {
          const [ip, len, ...rest] = s.split("/");
          const max = ipaddr.IPv4.isValid(ip ?? "") ? 32 : 128;
          // A bare address is one host (/32 or /128), as lib/net-acl.ts reads it.
          const n = len === undefined ? max : len === "" ? Number.NaN : Number(len);
          return (
            rest.length === 0 &&
            ipaddr.isValid(ip ?? "") &&
            Number.isInteger(n) &&
            n >= 0 &&
            n <= max
          );
        }, "must be an address or a subnet, like 4a2:1b3c::1 or 4a2:1b3c::/64"),
      ),
    ),
    [],
  ),
});

/** A peer URI the real mycelium takes (an address, not a name: a named peer stops it from starting). */
const PeerUri = v.pipe(
  v.string(),
  v.check(isPeerUri, "must be a peer URI like tcp://192.0.2.10:9651 or quic://[2001:db8::10]:9651"),
);
const AbsPath = v.pipe(
  v.string(),
  v.regex(/^\//, "must be an absolute path"),
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  v.regex(/^[^\x00-\x1f\x7f]*$/, "must not contain control characters (newline, tab, NUL…)"),
  v.check((p) => !p.split("/").includes(".."), 'must not contain ".."'),
);

/** mycelium, run as a supervised service (absent: no mycelium). */
export const MyceliumSchema = v.strictObject({
  peers: v.optional(v.array(PeerUri), []),
  binary: v.optional(AbsPath, "/usr/bin/mycelium"),
  key_file: v.optional(AbsPath, LAYOUT.myceliumKey),
  tun_name: v.optional(
    v.pipe(v.string(), v.regex(ifnameRe, "must be an interface name")),
    "mycelium",
  ),
  api_addr: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^(127\.\d+\.\d+\.\d+|\[::1\]):\d{1,5}$/, "must be a loopback address:port"),
    ),
    "127.0.0.1:8989",
  ),
  extra_args: v.optional(v.array(v.string()), []),
});

const ServicesSchema = v.strictObject({
  /** zinit's config dir (zinit -c). */
  dir: v.optional(
    v.pipe(v.string(), v.startsWith("/", "must be an absolute path")),
    LAYOUT.services,
  ),
  /** Lines kept in the log ring (zinit -b). */
  ring_size: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(10), v.maxValue(1_000_000)),
    2000,
  ),
});

const JobSchema = v.pipe(
  v.strictObject({
    /** The service whose exit ends the VM (HERO-EXIT, then power-off). */
    service: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,127}$/, "must be a service name"),
      ),
    ),
    /** Ephemeral job VM (seed 004): a runner to download, verified by sha256. */
    runner: v.optional(
      v.strictObject({
        url: v.pipe(
          v.string(),
          v.regex(/^(https?|file):\/\//, "must be an http(s):// or file:// URL"),
        ),
        sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits")),
        size: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(4 * 1024 ** 3)),
        /** For a .tar.gz: the member to run (default: the archive is the runner itself). */
        archive_member: v.optional(v.pipe(v.string(), v.minLength(1))),
        /** Where the runner is installed. */
        path: v.optional(AbsPath, LAYOUT.jobRunner),
      }),
    ),
    /** The job's command (argv); default: the runner itself. */
    command: v.optional(v.pipe(v.array(v.string()), v.minLength(1, "must not be empty"))),
    /** File with the short-lived token, written by the injector; moved to /run and deleted once read. */
    secret_file: v.optional(AbsPath),
    /** The token's expiry: past it, the job is refused without running anything. */
    expires: v.optional(
      v.pipe(
        v.union([v.date(), v.string()], "must be a date-time like 2027-01-01T00:00:00Z"),
        v.transform((d) => (d instanceof Date ? new Date(d.getTime()) : new Date(d))),
        v.check((d) => !Number.isNaN(d.getTime()), "must be a date-time like 2027-01-01T00:00:00Z"),
      ),
    ),
    /** The job's uid and gid (the secret is readable by that uid only). Default root. */
    uid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
    gid: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 0),
    /** Seconds the job gets after its stop signal before SIGKILL (graceful shutdown). */
    stop_timeout: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(3600)), 10),
    /** The job's working directory (its cwd), made for its uid, removed after the job (seed 004 work_dir). */
    work_dir: v.optional(
      v.pipe(
        AbsPath,
        v.check(
          (p) => p.split("/").filter(Boolean).length >= 2,
          "must be at least two levels deep, like /tmp/runner-work (it is deleted after the job)",
        ),
      ),
      "/tmp/runner-work",
    ),
    /**
     * CI runner registration (docs/jobs.md): PID 1 trades the short-lived
     * token of `secret_file` for a runner credential at `url`, the job runs
     * with that credential, and the runner is removed after it.
     */
    registration: v.optional(
      v.strictObject({
        // Bounded, and without control characters: it goes into PID 1's log lines.
        url: v.pipe(
          v.string(),
          v.maxLength(2048, "must be at most 2048 characters"),
          v.regex(
            // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
            /^https?:\/\/[^\s/?#\x00-\x1f\x7f]+(\/[^\s?#\x00-\x1f\x7f]*)?$/,
            "must be an http(s):// URL without query",
          ),
        ),
        runner_name: v.pipe(
          v.string(),
          v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 letters, digits, _ . -"),
        ),
        labels: v.optional(
          v.pipe(
            v.array(
              v.pipe(
                v.string(),
                v.regex(
                  /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/,
                  "must be 1-64 letters, digits, _ . : -",
                ),
              ),
            ),
            v.maxLength(32, "at most 32 labels"),
          ),
          [],
        ),
      }),
    ),
  }),
  v.check(
    (j) => (j.service === undefined) !== (j.runner === undefined && j.command === undefined),
    "set either service, or runner/command (not both, not neither)",
  ),
  v.check(
    (j) => j.registration === undefined || j.secret_file !== undefined,
    "[job.registration] needs secret_file (the file with the registration token)",
  ),
);

/** `[agent]`: the guest agent (docs/agent.md). */
const AgentSchema = v.strictObject({
  enabled: v.optional(v.boolean(), true),
  port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)), 9998),
  /** Extra addresses to listen on besides loopback (and mycelium). */
  listen: v.optional(v.array(v.string()), []),
  /** Extra client CIDRs allowed besides loopback and 400::/7. */
  allow: v.optional(v.array(v.string()), []),
  token_file: v.optional(AbsPath, LAYOUT.agentToken),
  /** Also listen on vsock (the agent's port, any CID) when the VM has a vsock transport. */
  vsock: v.optional(v.boolean(), true),
});

/** `[[volumes]]`: a block device mounted at boot (docs/images.md). */
const VolumeSchema = v.pipe(
  v.strictObject({
    /** The virtio-blk serial (QEMU `-drive …,serial=`), as /sys/block/<dev>/serial shows it. */
    serial: v.optional(
      v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,20}$/, "must be 1-20 of A-Z a-z 0-9 _ . -")),
    ),
    /** The ext2/3/4 filesystem label. */
    label: v.optional(
      v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,16}$/, "must be 1-16 of A-Z a-z 0-9 _ . -")),
    ),
    /** The device node, e.g. /dev/vdc. */
    device: v.optional(v.pipe(AbsPath, v.regex(/^\/dev\//, "must be a device under /dev/"))),
    /** The mount point. */
    path: v.pipe(
      AbsPath,
      v.check(
        (p) => p !== "/" && !/^\/(proc|sys|dev|run)(\/|$)/.test(p),
        "must not be /, /proc, /sys, /dev or /run",
      ),
    ),
    readonly: v.optional(v.boolean(), false),
    fs: v.optional(
      v.picklist(["ext4", "ext3", "ext2"], 'must be "ext4", "ext3" or "ext2"'),
      "ext4",
    ),
    /** Format the device with the rootfs's mkfs.ext4 when it is blank (all zeros). Opt-in. */
    mkfs: v.optional(v.boolean(), false),
    /** Owner of the mounted filesystem's root, "uid:gid" (read-write volumes). */
    owner: v.optional(
      v.pipe(v.string(), v.regex(/^\d{1,10}:\d{1,10}$/, 'must be "uid:gid", e.g. "1000:1000"')),
    ),
    /** Mode of the mounted filesystem's root, octal, e.g. "0750" (read-write volumes). */
    mode: v.optional(
      v.pipe(v.string(), v.regex(/^0?[0-7]{3,4}$/, 'must be an octal mode, e.g. "0750"')),
    ),
    /** Allow executing programs from it (default: noexec). nosuid and nodev always apply. */
    exec: v.optional(v.boolean(), false),
    /** Seconds to wait for the device to appear. */
    wait: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(300)), 10),
    /** deploy_vm only: size of the image it creates (MiB) when none exists. */
    size_mb: v.optional(
      v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(16 * 1024 * 1024)),
    ),
  }),
  v.check(
    (x) => [x.serial, x.label, x.device].filter((s) => s !== undefined).length === 1,
    "set exactly one of serial, label or device",
  ),
  v.check((x) => !(x.mkfs && x.readonly), "mkfs = true needs a read-write volume"),
);

/** `[update]`: follow a signed bootstrapper.toml (see docs/manifest.md). */
export const UpdateSchema = v.strictObject({
  /** URL of bootstrapper.toml; its signature is `<url>.minisig`. */
  manifest: v.pipe(
    v.string(),
    v.url("must be a URL"),
    v.regex(/^(https?|file):/, "must be an http(s):// or file:// URL"),
  ),
  /** The bootstrap server's minisign public key (the base64 line, "RW…"). */
  key: v.pipe(v.string(), v.regex(/^RW[A-Za-z0-9+/]{54}$/, "must be a minisign public key (RW…)")),
  env: v.optional(v.picklist(ENVIRONMENTS, "must be dev, testing, canary or production")),
  /** Seconds between polls (0: only on demand). */
  interval: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(7 * 86400)), 3600),
  /** Each wait is the interval ± this fraction, so a fleet does not poll in step. */
  jitter: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1)), 0.1),
  /** Binaries kept at their installed version whatever the manifest says. */
  pins: v.optional(v.array(v.string()), []),
  /** Seconds a restarted service must stay up to count as healthy. */
  health_seconds: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(600)), 5),
});

/** `init` in vm.toml: who runs as PID 1 once the early boot is done. */
export const INIT_MODES = ["hero", "systemd", "auto"] as const;

/** The whole vm.toml. Every section is optional and has safe defaults. */
export const VmConfigSchema = v.strictObject({
  hostname: v.optional(
    v.pipe(v.string(), v.regex(hostnameRe, "must be a valid host name (RFC 1123)")),
    "hero-vm",
  ),
  /**
   * Who is PID 1 after the early boot (docs/images.md): "hero" stays PID 1;
   * "systemd" hands off to the image's systemd, hero-init running on as
   * units; "auto" hands off only when the image's own /sbin/init was systemd.
   */
  init: v.optional(v.picklist(INIT_MODES, 'must be "hero", "systemd" or "auto"'), "hero"),
  modules: v.optional(
    v.array(v.pipe(v.string(), v.regex(moduleRe, "must be a kernel module name"))),
    [],
  ),
  network: v.optional(NetworkSchema, { interfaces: [], dns: [], search: [] }),
  ui: v.optional(UiSchema, {
    port: 9999,
    listen: [],
    allow: [],
    terminal: false,
    terminal_allow: [],
  }),
  /** SSH public keys for root, written to /root/.ssh/authorized_keys by the injector. */
  ssh_authorized_keys: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.regex(
          /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+( .*)?$/,
          "must be an OpenSSH public key line",
        ),
      ),
    ),
    [],
  ),
  services: v.optional(ServicesSchema, { dir: LAYOUT.services, ring_size: 2000 }),
  job: v.optional(JobSchema),
  mycelium: v.optional(MyceliumSchema),
  update: v.optional(UpdateSchema),
  /** The machine's identity, shown by the UI and `hero-init status` (lib/identity.ts). */
  identity: v.optional(IdentitySchema),
  agent: v.optional(AgentSchema, {
    enabled: true,
    port: 9998,
    listen: [],
    allow: [],
    token_file: LAYOUT.agentToken,
    vsock: true,
  }),
  env: v.optional(
    v.record(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/)), v.string()),
    {},
  ),
  volumes: v.optional(
    v.pipe(
      v.array(VolumeSchema),
      v.maxLength(64, "at most 64 volumes"),
      v.check(
        (vs) => new Set(vs.map((x) => x.path)).size === vs.length,
        "two volumes have the same path",
      ),
    ),
    [],
  ),
});

/**
 * A validated VM config. `jobError` is set when vm.toml had a `[job]` that
 * was invalid: that VM ends with code 3 instead of running without its job.
 */
export type VmConfig = v.InferOutput<typeof VmConfigSchema> & { jobError?: string };
/** The raw input form (what the injector writes). */
export type VmConfigInput = v.InferInput<typeof VmConfigSchema>;

/** The config a VM boots with when it has none, or nothing of it is valid. */
export function defaultVmConfig(): VmConfig {
  return v.parse(VmConfigSchema, {});
}

/** Result of loading: the config to use and every problem found on the way. */
export interface LoadedVmConfig {
  config: VmConfig;
  errors: HeroError[];
}

function issuePath(issue: v.BaseIssue<unknown>): (string | number)[] {
  return (issue.path ?? []).map((p) => p.key as string | number);
}

/**
 * Validates a raw object; each invalid top-level key is reported and dropped
 * (its default applies) and the rest is kept. `text` is used for line numbers.
 */
export function validateVmConfig(raw: unknown, file: string, text = ""): LoadedVmConfig {
  const errors: HeroError[] = [];
  const isTable = typeof raw === "object" && raw !== null && !Array.isArray(raw);
  if (!isTable) errors.push(new HeroError("schema", "config must be a table", { file }));
  let input: Record<string, unknown> = isTable ? { ...(raw as Record<string, unknown>) } : {};
  let jobError: string | undefined;
  for (let attempt = 0; attempt < 32; attempt++) {
    const res = v.safeParse(VmConfigSchema, input);
    if (res.success) return { config: jobError ? { ...res.output, jobError } : res.output, errors };
    const dropped = new Set<string>();
    for (const issue of res.issues) {
      const path = issuePath(issue);
      const field = path.join(".") || "(root)";
      const top = String(path[0] ?? "");
      errors.push(
        new HeroError(
          "schema",
          `${issue.message}${typeof issue.input === "string" ? ` (got "${issue.input}")` : ""}; using the default for [${top}]`,
          {
            file,
            line: locateKey(text, path),
            field,
          },
        ),
      );
      dropped.add(top);
      if (top === "job") jobError ??= `vm.toml [job] ${field}: ${issue.message}`;
    }
    if (dropped.has("")) break;
    input = Object.fromEntries(Object.entries(input).filter(([k]) => !dropped.has(k)));
  }
  return { config: defaultVmConfig(), errors };
}

/** Parses and validates vm.toml text. Never throws. */
export function parseVmConfig(text: string, file: string): LoadedVmConfig {
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text, file);
  } catch (e) {
    const err = isHeroError(e, "input") ? e : new HeroError("toml-syntax", String(e), { file });
    return { config: defaultVmConfig(), errors: [err] };
  }
  return validateVmConfig(raw, file, text);
}
