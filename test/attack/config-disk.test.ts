/**
 * A hostile config disk (issue 18): the disk a VM boots with is input from
 * whoever built it. guest/boot/config-disk.ts's copy (the code the guest
 * runs on the mounted disk) is played against a tree holding symlinks to
 * host files, a device node, a FIFO, a sparse 2 GiB file, too many files,
 * names with control characters, a directory where a file belongs and a
 * non-UTF-8 vm.toml. Each is refused with a message naming it, nothing is
 * read through a link or device, nothing is written outside the targets,
 * and the copy returns (a FIFO would block a naive read forever).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyConfigTree, readBounded } from "../../guest/boot/config-disk.ts";
import { CONFIG_DISK_LIMITS } from "../../lib/config-disk.ts";

let root: string;
let disk: string;
let to: { dir: string; secrets: string };

function run(argv: string[]): void {
  const p = Bun.spawnSync(argv);
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${p.stderr.toString()}`);
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "attack-cfgdisk-"));
  disk = join(root, "disk");
  to = { dir: join(root, "run/config-disk"), secrets: join(root, "run/secrets") };
  mkdirSync(join(disk, "services"), { recursive: true });
  mkdirSync(join(disk, "secrets"));
  writeFileSync(join(root, "host-secret"), "HOST-ONLY\n");
  // vm.toml is a link to a host file
  symlinkSync(join(root, "host-secret"), join(disk, "vm.toml"));
  writeFileSync(join(disk, "services", "ok.yaml"), "exec: true\n");
  symlinkSync(join(root, "host-secret"), join(disk, "services", "link.yaml"));
  run(["mkfifo", join(disk, "services", "fifo.yaml")]);
  run(["mknod", join(disk, "secrets", "mem"), "c", "1", "1"]); // /dev/mem's numbers
  writeFileSync(join(disk, "secrets", "big"), "");
  truncateSync(join(disk, "secrets", "big"), 2 * 1024 ** 3);
  writeFileSync(join(disk, "secrets", "esc\x1b[2Jape"), "x");
  writeFileSync(join(disk, "secrets", ".hidden"), "x");
  writeFileSync(join(disk, "secrets", "token"), "s3cret\n");
  mkdirSync(join(disk, "secrets", "subdir"));
  symlinkSync("/etc", join(disk, "etc"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("hostile config disk", () => {
  test("every bad entry is refused by name; good ones are copied at 0600; the copy returns", () => {
    const r = copyConfigTree(disk, to);
    const all = r.refused.join("\n");
    expect(all).toMatch(/vm\.toml: not a regular file/);
    expect(all).toMatch(/services\/link\.yaml: not a regular file/);
    expect(all).toMatch(/services\/fifo\.yaml: not a regular file/);
    expect(all).toMatch(/secrets\/mem: not a regular file/);
    expect(all).toMatch(/secrets\/big: 2147483648 bytes, more than the 1048576 allowed/);
    expect(all).toMatch(/secrets\/"esc\?\[2Jape": bad name/);
    expect(all).toMatch(/secrets\/"\.hidden": bad name/);
    expect(all).toMatch(/secrets\/subdir: not a regular file/);
    expect(all).toMatch(/"etc": not part of the config disk layout/);
    // no control character reaches the console
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for the escape
    expect(all).not.toMatch(/\x1b/);
    expect(r.vmToml).toBe(false);
    expect(r.secrets).toBe(1);
    expect(readFileSync(join(to.secrets, "token"), "utf8")).toBe("s3cret\n");
    expect(statSync(join(to.secrets, "token")).mode & 0o777).toBe(0o600);
    expect(statSync(to.secrets).mode & 0o777).toBe(0o700);
    // nothing read through a link: the host file's text is nowhere in the copy
    for (const d of [to.dir, join(to.dir, "services"), to.secrets])
      for (const f of readdirSync(d, { withFileTypes: true }))
        if (f.isFile()) expect(readFileSync(join(d, f.name), "utf8")).not.toContain("HOST-ONLY");
    expect(r.services).toBe(1);
    expect(readdirSync(join(root, "run")).sort()).toEqual(["config-disk", "secrets"]);
  });

  test("too many files: at most the limit is taken, the rest refused with one message", () => {
    const d3 = join(root, "disk3");
    mkdirSync(join(d3, "services"), { recursive: true });
    for (let i = 0; i < CONFIG_DISK_LIMITS.maxFiles + 50; i++)
      writeFileSync(join(d3, "services", `s${i}.yaml`), "exec: true\n");
    const t3 = { dir: join(root, "run3/config-disk"), secrets: join(root, "run3/secrets") };
    const r = copyConfigTree(d3, t3);
    expect(r.services).toBe(CONFIG_DISK_LIMITS.maxFiles);
    expect(r.refused).toEqual([
      `services/: more than ${CONFIG_DISK_LIMITS.maxFiles} entries: the rest is ignored`,
    ]);
    expect(readdirSync(join(t3.dir, "services")).length).toBe(CONFIG_DISK_LIMITS.maxFiles);
  });

  test("budget over the whole disk: files and bytes in all are capped across services/ and secrets/", () => {
    const { maxFiles, maxFileBytes, maxTotalBytes } = CONFIG_DISK_LIMITS;
    // Files: each directory is within its listing cap, together they are not.
    const d4 = join(root, "disk4");
    mkdirSync(join(d4, "services"), { recursive: true });
    mkdirSync(join(d4, "secrets"));
    for (let i = 0; i < maxFiles - 10; i++)
      writeFileSync(join(d4, "services", `s${i}.yaml`), "exec: true\n");
    for (let i = 0; i < 20; i++) writeFileSync(join(d4, "secrets", `k${i}`), "x");
    const t4 = { dir: join(root, "run4/config-disk"), secrets: join(root, "run4/secrets") };
    const files = copyConfigTree(d4, t4);
    expect(files.secrets + files.services).toBe(maxFiles);
    expect(files.refused).toHaveLength(10);
    expect(files.refused[0]).toMatch(
      new RegExp(`: more than ${maxFiles} files on the config disk`),
    );
    expect(readdirSync(t4.secrets).length + readdirSync(join(t4.dir, "services")).length).toBe(
      maxFiles,
    );
    // Bytes: every file within its own limit, all of them over the total.
    const d5 = join(root, "disk5");
    mkdirSync(join(d5, "secrets"), { recursive: true });
    const n = maxTotalBytes / maxFileBytes + 1;
    for (let i = 0; i < n; i++) {
      writeFileSync(join(d5, "secrets", `b${i}`), "");
      truncateSync(join(d5, "secrets", `b${i}`), maxFileBytes);
    }
    const t5 = { dir: join(root, "run5/config-disk"), secrets: join(root, "run5/secrets") };
    const bytes = copyConfigTree(d5, t5);
    expect(bytes.secrets).toBe(n - 1);
    expect(bytes.refused).toEqual([
      `secrets/b9: the config disk holds more than ${maxTotalBytes} bytes`,
    ]);
  });

  test("the refusal list is bounded: a disk of bad names yields 64 messages and one summary", () => {
    const d6 = join(root, "disk6");
    mkdirSync(join(d6, "secrets"), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(d6, "secrets", `.bad${i}`), "x");
    const t6 = { dir: join(root, "run6/config-disk"), secrets: join(root, "run6/secrets") };
    const r = copyConfigTree(d6, t6);
    expect(r.refused).toHaveLength(65);
    expect(r.refused.at(-1)).toBe("… more entries refused");
    expect(r.secrets).toBe(0);
  });

  test("a non-UTF-8 vm.toml is refused, naming it; a good one is copied 0600", () => {
    const d2 = join(root, "disk2");
    const t2 = { dir: join(root, "run2/config-disk"), secrets: join(root, "run2/secrets") };
    mkdirSync(d2);
    writeFileSync(join(d2, "vm.toml"), new Uint8Array([0x68, 0x3d, 0xff, 0xfe, 0x0a]));
    const r = copyConfigTree(d2, t2);
    expect(r.refused).toEqual(["vm.toml: not valid UTF-8: the rootfs's vm.toml is used instead"]);
    expect(r.vmToml).toBe(false);
    writeFileSync(join(d2, "vm.toml"), 'hostname = "ok"\n');
    const ok = copyConfigTree(d2, t2);
    expect(ok).toEqual({ vmToml: true, services: 0, secrets: 0, refused: [] });
    expect(statSync(join(t2.dir, "vm.toml")).mode & 0o777).toBe(0o600);
  });

  test("readBounded: a file over its limit is refused, not read whole", () => {
    writeFileSync(join(root, "five"), "12345");
    expect(readBounded(join(root, "five"), 4)).toBe("5 bytes, more than the 4 allowed");
    expect(readBounded(join(root, "five"), 5)).toEqual(new TextEncoder().encode("12345"));
  });
});
