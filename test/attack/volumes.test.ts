/**
 * Attack: a vm.toml's `[[volumes]]` (it may come off a config disk) reaching
 * mkfs, in the guest (guest/boot/volumes.ts: mkfsArgv, run by runCommand)
 * and on the host (host/volumes.ts: deploy_vm's mke2fs). The schema allows
 * a label that looks like an option ("-V") and a device or mount point with
 * shell syntax; the defence is argv only, no shell, and the label always
 * behind -L: each value stays one argument, nothing it names is run, and
 * owner/mode/path never reach a command line.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkfsArgv } from "../../guest/boot/volumes.ts";
import { ensureVolumeImages } from "../../host/volumes.ts";
import { parseExt4Superblock } from "../../lib/ext4-superblock.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { runCommand } from "../../sys/command.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "attack-volumes-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function volumes(toml: string) {
  const { config, errors } = parseVmConfig(toml, "vm.toml");
  expect(errors).toEqual([]);
  return config.volumes;
}

test("guest mkfs: an option-like label and a device with shell syntax stay single arguments", () => {
  const pwned = join(dir, "PWNED-guest");
  const device = `/dev/vdb;touch ${pwned};$(touch ${pwned})`;
  const [v] = volumes(
    `[[volumes]]\ndevice = ${JSON.stringify(device)}\npath = "/srv/$(touch ${pwned})"\nmkfs = true\nowner = "0:0"\nmode = "0700"\n`,
  );
  if (!v) throw new Error("no volume");
  const vol = { ...v, label: "-V" }; // a label is one of serial/label/device: set it by hand
  // A stand-in mkfs.ext4 that records its arguments, one per line.
  const bin = join(dir, "bin");
  mkdirSync(bin);
  const record = join(dir, "argv");
  writeFileSync(join(bin, "mkfs.ext4"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${record}\n`);
  chmodSync(join(bin, "mkfs.ext4"), 0o755);
  const argv = mkfsArgv(vol, device, [bin]);
  expect(runCommand(argv).code).toBe(0);
  expect(readFileSync(record, "utf8").split("\n").slice(0, -1)).toEqual([
    "-q",
    "-F",
    "-t",
    "ext4",
    "-L",
    "-V",
    device,
  ]);
  expect(argv.join(" ")).not.toMatch(/0700|0:0|\/srv/); // owner, mode, path: never on a command line
  expect(existsSync(pwned)).toBe(false);
});

test("host mke2fs: a label like an option is the label; a mount point with shell syntax is a file name", () => {
  const out = join(dir, "out");
  const pwned = join(dir, "PWNED-host");
  const imgs = ensureVolumeImages(
    out,
    volumes(
      `[[volumes]]\nlabel = "-V"\npath = "/a"\nsize_mb = 8\n` +
        `[[volumes]]\ndevice = "/dev/vdc"\npath = "/b/$(touch ${pwned})"\nsize_mb = 8\n`,
    ),
  );
  expect(imgs.map((i) => i.path.startsWith(join(out, "volumes/")))).toEqual([true, true]);
  // mke2fs took "-V" as the label (as an option it would print its version and make nothing)
  const head = readFileSync(join(out, "volumes/label--V.img")).subarray(0, 2048);
  expect(parseExt4Superblock(head)?.label).toBe("-V");
  expect(readdirSync(join(out, "volumes")).sort()).toEqual(
    [`path-b-$(touch ${pwned.replaceAll("/", "-")}).img`, "label--V.img"].sort(),
  );
  expect(existsSync(pwned)).toBe(false);
});
