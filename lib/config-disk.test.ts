import { describe, expect, test } from "bun:test";
import {
  CONFIG_DISK_LIMITS,
  checkBudget,
  checkDirEntry,
  checkTopEntry,
  decodeVmToml,
} from "./config-disk.ts";

const file = (size = 10) => ({ isFile: true, isDirectory: false, size });
const dir = { isFile: false, isDirectory: true, size: 4096 };
const other = { isFile: false, isDirectory: false, size: 0 };

describe("layout checks", () => {
  test("taken: vm.toml, services/, secrets/; lost+found ignored silently", () => {
    expect(checkTopEntry("vm.toml", file())).toBeNull();
    expect(checkTopEntry("services", dir)).toBeNull();
    expect(checkTopEntry("secrets", dir)).toBeNull();
    expect(checkTopEntry("lost+found", dir)).toBe("");
    expect(checkDirEntry("services", "web.yaml", file())).toBeNull();
    expect(checkDirEntry("secrets", "agent.token", file())).toBeNull();
  });

  test("refused, each naming the entry", () => {
    expect(checkTopEntry("vm.toml", other)).toMatch(/^vm.toml: not a regular file/);
    expect(checkTopEntry("vm.toml", file(CONFIG_DISK_LIMITS.maxFileBytes + 1))).toMatch(
      /^vm.toml: \d+ bytes, more than/,
    );
    expect(checkTopEntry("services", file())).toMatch(/^services: not a directory/);
    expect(checkTopEntry("etc", dir)).toMatch(/^"etc": not part of the config disk layout/);
    expect(checkDirEntry("services", "web.sh", file())).toMatch(/^services\/"web.sh": .*\.yaml/);
    expect(checkDirEntry("secrets", "..", file())).toMatch(/^secrets\/"\.\.": bad name/);
    expect(checkDirEntry("secrets", ".hidden", file())).toMatch(/bad name/);
    expect(checkDirEntry("secrets", "a\nb", file())).toMatch(/^secrets\/"a\?b": bad name/);
    expect(checkDirEntry("secrets", "link", other)).toMatch(/^secrets\/link: not a regular file/);
  });

  test("budget: files and bytes in all", () => {
    expect(checkBudget({ files: 0, bytes: 0 }, 10, "a")).toBeNull();
    expect(checkBudget({ files: CONFIG_DISK_LIMITS.maxFiles, bytes: 0 }, 1, "a")).toMatch(
      /^a: more than \d+ files/,
    );
    expect(checkBudget({ files: 1, bytes: CONFIG_DISK_LIMITS.maxTotalBytes }, 1, "a")).toMatch(
      /^a: the config disk holds more than/,
    );
  });
});

test("decodeVmToml: UTF-8 only, no NUL", () => {
  expect(decodeVmToml(new TextEncoder().encode('hostname = "é"'))).toEqual({
    text: 'hostname = "é"',
  });
  expect(decodeVmToml(new Uint8Array([0x68, 0xff, 0xfe]))).toEqual({
    error: "vm.toml: not valid UTF-8",
  });
  expect(decodeVmToml(new Uint8Array([0x68, 0]))).toEqual({
    error: "vm.toml: contains a NUL byte",
  });
});
