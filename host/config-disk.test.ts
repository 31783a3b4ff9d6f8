import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseExt4Superblock } from "../lib/ext4-superblock.ts";
import { readFromExt4 } from "../test/vm/ext4-disk.ts";
import { buildConfigDisk, configDiskSizeMB, secretsForConfigDisk } from "./config-disk.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("secretsForConfigDisk", () => {
  test("the agent token, job secret and mycelium key move to the disk; vm.toml points at their tmpfs copies", () => {
    const r = secretsForConfigDisk(
      { job: { service: "j", secret_file: "/etc/hero-init/job.secret" }, mycelium: {} },
      {
        "/etc/hero-init/agent.token": enc("tok\n"),
        "/etc/hero-init/job.secret": enc("js"),
        "/var/lib/mycelium/key.bin": enc("k"),
      },
    );
    expect(Object.keys(r.secrets).sort()).toEqual(["agent.token", "job.secret", "mycelium.key"]);
    expect(r.raw).toEqual({
      agent: { token_file: "/run/hero-init/secrets/agent.token" },
      job: { service: "j", secret_file: "/run/hero-init/secrets/job.secret" },
      mycelium: { key_file: "/run/hero-init/secrets/mycelium.key" },
    });
  });

  test("a secret with no place on the disk (authorized_keys) is refused, naming it", () => {
    expect(() =>
      secretsForConfigDisk({}, { "/root/.ssh/authorized_keys": enc("ssh-ed25519 AAAA") }),
    ).toThrow(/authorized_keys: this secret has no place on a config disk/);
  });
});

test("buildConfigDisk: an ext4 image labelled HEROCFG with vm.toml, services/ and secrets/ (0600)", () => {
  const dir = mkdtempSync(join(tmpdir(), "cfgdisk-"));
  try {
    const img = join(dir, "config.ext4");
    buildConfigDisk(img, {
      vmToml: 'hostname = "a"\n',
      services: { web: "exec: true\n" },
      secrets: { "agent.token": enc("t\n") },
    });
    const head = new Uint8Array(readFileSync(img)).slice(0, 2048);
    expect(parseExt4Superblock(head)?.label).toBe("HEROCFG");
    expect(statSync(img).mode & 0o777).toBe(0o600); // it holds secrets
    expect(new TextDecoder().decode(readFromExt4(img, "/vm.toml"))).toBe('hostname = "a"\n');
    expect(new TextDecoder().decode(readFromExt4(img, "/services/web.yaml"))).toBe("exec: true\n");
    const stat = Bun.spawnSync([
      "debugfs",
      "-R",
      "stat /secrets/agent.token",
      img,
    ]).stdout.toString();
    expect(stat).toMatch(/Mode:\s+0600/);
    expect(() => buildConfigDisk(img, { vmToml: "", secrets: { "../x": enc("") } })).toThrow(
      /config disk: secrets\/"\.\.\/x": bad name/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("configDiskSizeMB: at least 4 MiB, room for what it holds", () => {
  expect(configDiskSizeMB(10)).toBe(4);
  expect(configDiskSizeMB(10 * 1024 * 1024)).toBe(22);
});
