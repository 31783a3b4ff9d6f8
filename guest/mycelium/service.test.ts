import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { LAYOUT } from "../../lib/layout.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { binaryLauncher, elfInterpreter, launcherFor, myceliumExec } from "./service.ts";

const cfg = () => {
  const c = parseVmConfig(`[mycelium]\npeers = ["tcp://[2001:db8::1]:9651"]\n`, "vm.toml").config
    .mycelium;
  if (!c) throw new Error("no mycelium section");
  return c;
};
const head = (path: string) => new Uint8Array(readFileSync(path)).subarray(0, 64 * 1024);

describe("starting a glibc-linked mycelium in a rootfs without glibc", () => {
  test("the exec line puts the private loader and its library dir first", () => {
    expect(
      myceliumExec(cfg(), { loader: "/usr/lib/hero/ld.so", libraryPath: "/usr/lib/hero" }),
    ).toBe(
      "/usr/lib/hero/ld.so --library-path /usr/lib/hero /usr/bin/mycelium -k /var/lib/mycelium/key.bin --tun-name mycelium --api-addr 127.0.0.1:8989 --peers tcp://[2001:db8::1]:9651",
    );
    expect(myceliumExec(cfg(), null)).toStartWith("/usr/bin/mycelium -k ");
  });

  test("reads PT_INTERP of a dynamic ELF; none for a static one, a script or a truncated header", () => {
    // The host's own binaries: ls is dynamic, Debian's busybox is static.
    expect(elfInterpreter(head("/bin/ls"))).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(elfInterpreter(head("/bin/busybox"))).toBeNull();
    expect(
      elfInterpreter(new TextEncoder().encode("#!/bin/sh\nexec true\n".padEnd(80))),
    ).toBeNull();
    expect(elfInterpreter(head("/bin/ls").subarray(0, 100))).toBeNull();
    expect(elfInterpreter(new Uint8Array(0))).toBeNull();
  });

  test("the private loader only when the interpreter is missing and the loader is there", () => {
    const has = (paths: string[]) => (p: string) => paths.includes(p);
    const interp = "/lib64/ld-linux-x86-64.so.2";
    expect(launcherFor(interp, has([LAYOUT.privateLoader]))).toEqual({
      loader: LAYOUT.privateLoader,
      libraryPath: LAYOUT.dir,
    });
    expect(launcherFor(interp, has([interp, LAYOUT.privateLoader]))).toBeNull();
    expect(launcherFor(interp, has([]))).toBeNull();
    expect(launcherFor(null, has([LAYOUT.privateLoader]))).toBeNull();
  });

  test("a binary that is not there yet runs as is (the supervisor reports the exec error)", () => {
    expect(binaryLauncher("/nonexistent/mycelium")).toBeNull();
    // On this host /bin/ls's interpreter exists: no loader.
    expect(binaryLauncher("/bin/ls")).toBeNull();
  });
});
