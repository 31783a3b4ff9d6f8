import { describe, expect, test } from "bun:test";
import { fmtBytes, fmtDuration, sameOriginPath, stateClass } from "./pages.ts";
import { diskMounts, parseMeminfo } from "./source.ts";
import { parseFrame } from "./terminal.ts";

describe("terminal frames", () => {
  test("input, resize (clamped), and clear errors", () => {
    expect(parseFrame('{"t":"i","d":"ls\\r"}')).toEqual({ input: "ls\r" });
    expect(parseFrame('{"t":"r","c":120,"r":40}')).toEqual({ cols: 120, rows: 40 });
    expect(parseFrame('{"t":"r","c":99999,"r":99999}')).toEqual({ cols: 1000, rows: 500 });
    expect(parseFrame('{"t":"r","c":1,"r":40}')).toHaveProperty("error");
    expect(parseFrame("not json")).toEqual({ error: "frame is not JSON" });
    expect(parseFrame('{"t":"x"}')).toHaveProperty("error");
    expect(parseFrame("null")).toHaveProperty("error");
  });
});

describe("formatting", () => {
  test("bytes, durations, state classes", () => {
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtBytes(1536)).toBe("1.5 KiB");
    expect(fmtBytes(null)).toBe("–");
    expect(fmtDuration(5300)).toBe("5.3s");
    expect(fmtDuration(3_725_000)).toBe("1h 2m");
    expect(fmtDuration(90_061_000)).toBe("1d 1h");
    expect(stateClass("Running")).toBe("ok");
    expect(stateClass("Error(Exited(Pid(3), 1))")).toBe("bad");
    expect(stateClass("Blocked")).toBe("wait");
    expect(stateClass("Unknown")).toBe("idle");
  });
});

describe("/proc parsers", () => {
  test("meminfo", () => {
    expect(parseMeminfo("MemTotal:  1000 kB\nMemFree: 1 kB\nMemAvailable:   500 kB\n")).toEqual({
      totalBytes: 1_024_000,
      availableBytes: 512_000,
    });
    expect(parseMeminfo("garbage")).toBeNull();
  });

  test("mounts: real filesystems once, the visible (last) one per mount point, escaped spaces decoded", () => {
    const m = diskMounts(
      "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\ntmpfs /my\\040dir tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n",
    );
    expect(m).toEqual([
      // /proc/mounts lists stacked mounts in order: /dev/vda's ext4 hides the rootfs.
      { mount: "/", fstype: "ext4" },
      { mount: "/my dir", fstype: "tmpfs" },
    ]);
  });
});

describe("redirect targets", () => {
  test("only a path on this origin; anything else is the fallback", () => {
    for (const ok of [
      "/",
      "/services",
      "/services/web",
      "/services/a%20b",
      "/x/../y",
      "/%2F%2Fevil",
    ])
      expect(sameOriginPath(ok, "/d")).toBe(ok);
    for (const bad of [
      "//evil.example/x",
      "/\\evil.example",
      "/\\/evil",
      "https://evil.example",
      "javascript:alert(1)",
      "%2F%2Fevil",
      "\t//evil",
      "/\t/evil",
      "/\n/evil",
      " /x",
      "/x y",
      "/x?next=//evil",
      "",
      "services",
      `/${"a".repeat(2048)}`,
      undefined,
      42,
    ])
      expect(sameOriginPath(bad, "/d")).toBe("/d");
  });
});
