/**
 * Environment access (seed 002): who may log in to a machine of an
 * environment, with which SSH keys, which sudo rights, and whether sshd
 * runs. Defined in the signed manifest's `[env.<name>.access]` sections, so
 * the keys are inside the signed bytes; never fetched at apply time.
 *
 * Pure: the schema, the four environments' policies (checked when the
 * manifest is parsed, so `manifest build` and every updater refuse the same
 * manifests), the lockout rule, the sudoers and sshd generators, and the
 * plan: desired access + what hero-init recorded last time + the machine's
 * passwd/group/shadow → the file edits that converge the machine. Applied by
 * update/access.ts. See docs/environments.md.
 */
import * as v from "valibot";
import type { Environment as Env } from "./environments.ts";
import { HeroError } from "./errors.ts";

/** Login names hero-init creates: lower-case POSIX-portable, no ':' '/' or newline. */
export const USER_NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

/** Names hero-init never creates or manages: system accounts and sudo/ssh keywords. */
const RESERVED_USERS = new Set([
  "root",
  "daemon",
  "bin",
  "sys",
  "sync",
  "games",
  "man",
  "lp",
  "mail",
  "news",
  "uucp",
  "proxy",
  "www-data",
  "backup",
  "list",
  "irc",
  "nobody",
  "nogroup",
  "sshd",
  "messagebus",
  "systemd-network",
  "systemd-resolve",
  "systemd-timesync",
  "_apt",
  "all",
  "sudo",
  "admin",
]);

/** OpenSSH public key types hero-init accepts. */
const KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

/**
 * Pure: checks one authorized_keys line: `type base64 [comment]`, nothing
 * before the type (so no `command=`, `from=` or other option can be
 * smuggled in), the base64 blob's embedded type equal to the stated one,
 * printable ASCII only. Returns the reason it is refused, or null.
 */
export function sshKeyProblem(line: string): string | null {
  if (line.length > 16384) return "is longer than 16384 bytes";
  if (!/^[\x20-\x7e]+$/.test(line))
    return "must be one line of printable ASCII (no newline, tab or control character)";
  const [type, blob, ...rest] = line.split(" ");
  if (!KEY_TYPES.includes(type as (typeof KEY_TYPES)[number]))
    return `must start with a key type (${KEY_TYPES.slice(0, 3).join(", ")}…); options such as command= or from= are not accepted`;
  if (!blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return "has no base64 key after its type";
  const raw = Buffer.from(blob, "base64");
  const n = raw.length >= 4 ? raw.readUInt32BE(0) : -1;
  if (n < 1 || n > 64 || raw.length < 4 + n || raw.subarray(4, 4 + n).toString("latin1") !== type)
    return `is not a ${type} public key (its base64 does not start with that type)`;
  if (rest.join(" ").length > 512) return "has a comment longer than 512 bytes";
  return null;
}

/** The key itself (type and base64), without the comment: what "the same key" means. */
export const keyIdentity = (line: string) => line.split(" ").slice(0, 2).join(" ");

/**
 * Pure: the keys of authorized_keys text `before` that `after` no longer
 * has (by identity; comments and blank lines ignored): a revocation.
 */
export function lostKeys(before: string, after: string): string[] {
  const ids = (t: string) =>
    new Set(
      t
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"))
        .map(keyIdentity),
    );
  const now = ids(after);
  return [...ids(before)].filter((k) => !now.has(k));
}

/** Shells and tools that turn a scoped sudo rule into a root shell. */
const ESCAPES = new Set([
  "sh",
  "bash",
  "dash",
  "zsh",
  "ksh",
  "fish",
  "su",
  "sudo",
  "sudoedit",
  "visudo",
  "env",
  "busybox",
  "hero-init",
]);

/**
 * Pure: checks one scoped sudo command: an absolute program path and plain
 * arguments of `A-Z a-z 0-9 _ . / @ + = -`, one space between words. That
 * leaves no room for sudoers syntax (`,` `:` `\` `!` `#` `(` wildcards),
 * the `ALL` keyword, `..` segments, or a shell. Returns the reason, or null.
 */
export function sudoCommandProblem(cmd: string): string | null {
  if (cmd.length > 512) return "is longer than 512 bytes";
  if (!/^\/[A-Za-z0-9_./+@-]+( [A-Za-z0-9_./@+=-]+)*$/.test(cmd))
    return 'must be an absolute program path and plain arguments (letters, digits, "_ . / @ + = -", single spaces; no ",", ":", "\\", "!", "*", quotes or newlines)';
  const words = cmd.split(" ");
  if (words.some((w) => /^all$/i.test(w) || /(^|\/)ALL$/i.test(w)))
    return 'must not contain the sudoers keyword "ALL"';
  const prog = words[0] as string;
  if (prog.split("/").some((s) => s === "." || s === ".."))
    return 'must not contain "." or ".." path segments';
  if (ESCAPES.has(prog.slice(prog.lastIndexOf("/") + 1)))
    return `runs ${prog}, which gives a root shell: list the commands themselves`;
  return null;
}

const SshKey = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    const p = dataset.typed ? sshKeyProblem(dataset.value) : null;
    if (p) addIssue({ message: `SSH key ${p}` });
  }),
);
const SudoCommand = v.pipe(
  v.string(),
  v.rawCheck(({ dataset, addIssue }) => {
    const p = dataset.typed ? sudoCommandProblem(dataset.value) : null;
    if (p) addIssue({ message: `sudo command ${p}` });
  }),
);

/** One user of an environment. */
export const AccessUserSchema = v.strictObject({
  name: v.pipe(
    v.string(),
    v.regex(
      USER_NAME_RE,
      'must be a login name: lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32 (no ":", "/" or newline)',
    ),
    v.check((n) => !RESERVED_USERS.has(n), "is a system account hero-init never manages"),
  ),
  /** authorized_keys lines, inline (signed with the manifest). */
  keys: v.optional(v.array(SshKey), []),
  /** none, scoped (sudo_commands only) or passwordless (everything); default per environment. */
  sudo: v.optional(
    v.picklist(["none", "scoped", "passwordless"], "must be none, scoped or passwordless"),
  ),
  /** With sudo = "scoped": the commands this user may run as root. */
  sudo_commands: v.optional(v.array(SudoCommand), []),
  shell: v.optional(
    v.pipe(v.string(), v.regex(/^\/[A-Za-z0-9_/.-]{1,63}$/, "must be an absolute path")),
    "/bin/sh",
  ),
});

/** `[env.<name>.access]`. */
export const AccessSchema = v.strictObject({
  /** Whether sshd runs (default true). */
  sshd: v.optional(v.boolean(), true),
  /**
   * The operator's statement that machines of this environment are reached
   * another way (console, debug terminal): only then may sshd be off.
   */
  console_only: v.optional(v.boolean(), false),
  users: v.optional(v.array(AccessUserSchema), []),
});

/** A validated access section. */
export type Access = v.InferOutput<typeof AccessSchema>;
/** A validated user. */
export type AccessUser = v.InferOutput<typeof AccessUserSchema>;
/** Sudo rights. */
export type SudoMode = "none" | "scoped" | "passwordless";

/** The seed's four environment policies (docs/environments.md). */
export interface AccessPolicy {
  /** Sudo when a user does not say. */
  defaultSudo: SudoMode;
  /** Whether `sudo = "passwordless"` (everything, no password) is allowed. */
  passwordless: boolean;
  /** sshd restricted: no forwarding, no root login, fewer tries. */
  restrictedSsh: boolean;
  /** No key that the dev environment lists may appear. */
  noDevKeys: boolean;
  summary: string;
}

export const ACCESS_POLICIES: Record<Env, AccessPolicy> = {
  dev: {
    defaultSudo: "passwordless",
    passwordless: true,
    restrictedSsh: false,
    noDevKeys: false,
    summary: "full SSH, passwordless sudo",
  },
  testing: {
    defaultSudo: "passwordless",
    passwordless: true,
    restrictedSsh: false,
    noDevKeys: false,
    summary: "test team SSH, passwordless sudo",
  },
  canary: {
    defaultSudo: "none",
    passwordless: false,
    restrictedSsh: true,
    noDevKeys: false,
    summary: "restricted SSH, scoped sudo",
  },
  production: {
    defaultSudo: "none",
    passwordless: false,
    restrictedSsh: true,
    noDevKeys: true,
    summary: "no dev SSH keys, no passwordless sudo",
  },
};

/** A user's sudo mode after the environment's default. */
export const sudoOf = (u: AccessUser, env: Env): SudoMode =>
  u.sudo ?? ACCESS_POLICIES[env].defaultSudo;

/**
 * Pure: checks the access sections of a manifest against the policies and
 * the lockout rule. `at(env, path)` names the field for the error (file and
 * line come from the caller). Throws HeroError("schema") naming the environment.
 */
export function checkAccess(
  sections: Partial<Record<Env, Access | undefined>>,
  at: (env: Env, path: (string | number)[]) => { file?: string; line?: number; field: string },
): void {
  const devKeys = new Set((sections.dev?.users ?? []).flatMap((u) => u.keys.map(keyIdentity)));
  for (const [env, a] of Object.entries(sections) as [Env, Access | undefined][]) {
    if (!a) continue;
    const policy = ACCESS_POLICIES[env];
    const fail = (msg: string, path: (string | number)[]): never => {
      throw new HeroError("schema", `environment "${env}": ${msg}`, at(env, path));
    };
    const names = new Set<string>();
    for (const [i, u] of a.users.entries()) {
      if (names.has(u.name)) fail(`user "${u.name}" listed twice`, ["users", i, "name"]);
      names.add(u.name);
      const sudo = sudoOf(u, env);
      if (sudo === "passwordless" && !policy.passwordless)
        fail(
          `user "${u.name}": passwordless sudo is not allowed in ${env} (${policy.summary}); use sudo = "scoped" with sudo_commands`,
          ["users", i, "sudo"],
        );
      if (sudo === "scoped" && u.sudo_commands.length === 0)
        fail(`user "${u.name}": sudo = "scoped" needs sudo_commands`, ["users", i, "sudo"]);
      if (sudo !== "scoped" && u.sudo_commands.length > 0)
        fail(`user "${u.name}": sudo_commands need sudo = "scoped"`, ["users", i, "sudo_commands"]);
      const keys = new Set<string>();
      for (const [k, key] of u.keys.entries()) {
        const id = keyIdentity(key);
        if (keys.has(id))
          fail(`user "${u.name}": the same key is listed twice`, ["users", i, "keys", k]);
        keys.add(id);
        if (policy.noDevKeys && devKeys.has(id))
          fail(
            `user "${u.name}": key ${k + 1} is a dev key (listed in env.dev.access); ${env} allows no dev SSH keys`,
            ["users", i, "keys", k],
          );
      }
    }
    // The lockout rule: a managed machine must keep a way in.
    if (!a.sshd && !a.console_only)
      fail(
        "sshd = false leaves no way in (hero-init refuses to lock the operator out); set console_only = true if machines are reached another way",
        ["sshd"],
      );
    if (a.sshd && !a.users.some((u) => u.keys.length > 0))
      fail(
        "no user with an SSH key: this access section would leave no way in (hero-init refuses to lock the operator out)",
        ["users"],
      );
  }
}

// ---------------------------------------------------------------- generators

/** Pure: the sudoers drop-in of one user (null: no sudo, no file). Inputs were checked by the schema. */
export function sudoersText(u: AccessUser, env: Env): string | null {
  const sudo = sudoOf(u, env);
  if (!USER_NAME_RE.test(u.name)) throw new HeroError("schema", `bad user name "${u.name}"`);
  if (sudo === "none") return null;
  const head = `# managed by hero-init (environment ${env}); changes are overwritten\n`;
  if (sudo === "passwordless") return `${head}${u.name} ALL=(root) NOPASSWD: ALL\n`;
  for (const c of u.sudo_commands) {
    const p = sudoCommandProblem(c);
    if (p) throw new HeroError("schema", `sudo command "${c}" ${p}`);
  }
  return `${head}${u.name} ALL=(root) NOPASSWD: ${u.sudo_commands.join(", ")}\n`;
}

/** Pure: the sshd drop-in for an environment. */
export function sshdConfigText(env: Env): string {
  const lines = [
    `# managed by hero-init (environment ${env}: ${ACCESS_POLICIES[env].summary})`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitEmptyPasswords no",
  ];
  if (ACCESS_POLICIES[env].restrictedSsh)
    lines.push(
      "PermitRootLogin no",
      "AllowTcpForwarding no",
      "AllowAgentForwarding no",
      "AllowStreamLocalForwarding no",
      "X11Forwarding no",
      "PermitTunnel no",
      "MaxAuthTries 3",
    );
  else lines.push("PermitRootLogin prohibit-password");
  return `${lines.join("\n")}\n`;
}

/** Pure: a user's authorized_keys. */
export function authorizedKeysText(u: AccessUser, env: Env): string {
  for (const k of u.keys) {
    const p = sshKeyProblem(k);
    if (p) throw new HeroError("schema", `user "${u.name}": SSH key ${p}`);
  }
  return `# managed by hero-init (environment ${env}); changes are overwritten\n${u.keys.map((k) => `${k}\n`).join("")}`;
}

// ---------------------------------------------------------------- the plan

/** What hero-init manages on a machine, kept between runs (update state dir, access.json). */
export interface AccessRecord {
  env?: string;
  /** Users hero-init created, with their uid (also their group's gid). */
  users: Record<string, { uid: number; home: string }>;
}

/** The machine's account files, as text. */
export interface AccountFiles {
  passwd: string;
  group: string;
  shadow: string;
}

/** One file system change; paths are absolute on the machine (the applier adds its root). */
export type AccessEdit =
  | {
      kind: "write";
      path: string;
      content: string;
      mode: number;
      uid: number;
      gid: number;
      sudoers?: true;
    }
  | { kind: "remove"; path: string }
  | { kind: "mkdir"; path: string; mode: number; uid: number; gid: number }
  | { kind: "chown"; path: string; mode: number; uid: number; gid: number };

/** Where the generated files live. */
export const ACCESS_PATHS = {
  sudoersDir: "/etc/sudoers.d",
  sudoersPrefix: "hero-init-",
  sshdDropIn: "/etc/ssh/sshd_config.d/hero-init.conf",
} as const;

/** The plan: edits in order, the record to keep once they are done, whether sshd should run. */
export interface AccessPlan {
  edits: AccessEdit[];
  record: AccessRecord;
  sshd: boolean;
  /** One line per user added, changed or removed. */
  summary: string[];
  /** Managed users no longer listed (their sessions end: update/access.ts). */
  removed: { name: string; uid: number }[];
}

const FIRST_UID = 1000;
const LAST_UID = 59999;

/** Pure: the entries of a passwd/group/shadow file by name. */
function entries(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    m.set(f[0] as string, f);
  }
  return m;
}

/** Pure: `text` with the lines of `names` removed and `add` lines appended (trailing newline kept). */
function editLines(text: string, names: ReadonlySet<string>, add: readonly string[]): string {
  const kept = text.split("\n").filter((l) => l && !names.has(l.split(":")[0] as string));
  return `${[...kept, ...add].join("\n")}\n`;
}

/**
 * Pure: converges the machine on `access` (undefined: the environment has
 * no access section, and the machine is left as it is). Managed users that
 * are no longer listed lose their login (account lines, keys, sudoers) and
 * their home becomes root's; users hero-init did not create are never
 * touched, and listing one is an error.
 */
export function planAccess(
  env: Env,
  access: Access | undefined,
  record: AccessRecord,
  files: AccountFiles,
): AccessPlan {
  if (!access) return { edits: [], record, sshd: true, summary: [], removed: [] };
  const passwd = entries(files.passwd);
  const group = entries(files.group);
  const wanted = new Map(access.users.map((u) => [u.name, u]));
  const edits: AccessEdit[] = [];
  const summary: string[] = [];
  const next: AccessRecord = { env, users: {} };
  const used = new Set<number>();
  for (const f of [...passwd.values(), ...group.values()]) used.add(Number(f[2]));

  // Removed users first, sudo rights before anything else.
  const removed = Object.keys(record.users)
    .filter((n) => !wanted.has(n))
    .sort();
  for (const n of removed) {
    const r = record.users[n] as { uid: number; home: string };
    edits.push(
      { kind: "remove", path: `${ACCESS_PATHS.sudoersDir}/${ACCESS_PATHS.sudoersPrefix}${n}` },
      { kind: "remove", path: `${r.home}/.ssh/authorized_keys` },
      { kind: "chown", path: r.home, mode: 0o700, uid: 0, gid: 0 },
    );
    summary.push(`removed user ${n}`);
  }
  const gone = removed.map((name) => ({ name, uid: (record.users[name] as { uid: number }).uid }));

  const add = { passwd: [] as string[], group: [] as string[], shadow: [] as string[] };
  const rewrite = new Set(removed);
  const perUser: AccessEdit[] = [];
  for (const u of access.users) {
    const rec = record.users[u.name];
    const existing = passwd.get(u.name);
    if (existing && !rec)
      throw new HeroError(
        "access.unmanaged",
        `environment "${env}": user "${u.name}" already exists on this machine and was not created by hero-init; refusing to take it over`,
      );
    if (!existing && group.has(u.name) && !rec)
      throw new HeroError(
        "access.unmanaged",
        `environment "${env}": group "${u.name}" already exists on this machine; refusing to take it over`,
      );
    let uid = existing ? Number(existing[2]) : rec?.uid;
    if (uid === undefined || (!existing && used.has(uid))) {
      uid = FIRST_UID;
      while (used.has(uid) && uid <= LAST_UID) uid++;
      if (uid > LAST_UID) throw new HeroError("access.uids", "no free uid between 1000 and 59999");
    }
    used.add(uid);
    const home = `/home/${u.name}`;
    next.users[u.name] = { uid, home };
    const line = `${u.name}:x:${uid}:${uid}:managed by hero-init:${home}:${u.shell}`;
    if (!existing || existing.join(":") !== line) {
      rewrite.add(u.name);
      add.passwd.push(line);
      add.group.push(`${u.name}:x:${uid}:`);
      add.shadow.push(`${u.name}:*:::::::`);
      summary.push(`${existing ? "updated" : "added"} user ${u.name}`);
    }
    perUser.push(
      { kind: "mkdir", path: home, mode: 0o750, uid, gid: uid },
      { kind: "mkdir", path: `${home}/.ssh`, mode: 0o700, uid, gid: uid },
      {
        kind: "write",
        path: `${home}/.ssh/authorized_keys`,
        content: authorizedKeysText(u, env),
        mode: 0o600,
        uid,
        gid: uid,
      },
    );
    const sudoers = sudoersText(u, env);
    const path = `${ACCESS_PATHS.sudoersDir}/${ACCESS_PATHS.sudoersPrefix}${u.name}`;
    perUser.push(
      sudoers
        ? { kind: "write", path, content: sudoers, mode: 0o440, uid: 0, gid: 0, sudoers: true }
        : { kind: "remove", path },
    );
  }
  if (rewrite.size) {
    // A changed user's old lines go and its new ones come back in the same write.
    edits.push(
      {
        kind: "write",
        path: "/etc/passwd",
        content: editLines(files.passwd, rewrite, add.passwd),
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
      {
        kind: "write",
        path: "/etc/group",
        content: editLines(files.group, rewrite, add.group),
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
      {
        kind: "write",
        path: "/etc/shadow",
        content: editLines(files.shadow, rewrite, add.shadow),
        mode: 0o640,
        uid: 0,
        gid: shadowGid(group),
      },
    );
  }
  edits.push(...perUser, {
    kind: "write",
    path: ACCESS_PATHS.sshdDropIn,
    content: sshdConfigText(env),
    mode: 0o644,
    uid: 0,
    gid: 0,
  });
  return { edits, record: next, sshd: access.sshd, summary, removed: gone };
}

/** Debian's /etc/shadow belongs to group shadow; root elsewhere. */
function shadowGid(group: Map<string, string[]>): number {
  const g = group.get("shadow");
  return g ? Number(g[2]) : 0;
}
