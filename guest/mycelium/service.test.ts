import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LAYOUT } from "../../lib/layout.ts";
import type { ServiceSpec } from "../../lib/service-spec.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import {
  binaryLauncher,
  dadPending,
  launcherFor,
  MYCELIUM_SERVICE,
  myceliumExec,
  startMycelium,
} from "./service.ts";

const cfg = () => {
  const c = parseVmConfig(`[mycelium]\npeers = ["tcp://[2001:db8::1]:9651"]\n`, "vm.toml").config
    .mycelium;
  if (!c) throw new Error("no mycelium section");
  return c;
};

describe("starting a glibc-linked mycelium in a rootfs without glibc", () => {
  test("the exec line puts the private loader and its library dir first", () => {
    expect(
      myceliumExec(cfg(), { loader: "/usr/lib/hero/ld.so", libraryPath: "/usr/lib/hero" }),
    ).toBe(
      "/usr/lib/hero/ld.so --library-path /usr/lib/hero /usr/bin/mycelium -k /var/lib/mycelium/key.bin --tun-name mycelium --api-addr 127.0.0.1:8989 --peers tcp://[2001:db8::1]:9651",
    );
    expect(myceliumExec(cfg(), null)).toStartWith("/usr/bin/mycelium -k ");
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

describe("starting once the addresses are usable", () => {
  // /proc/net/if_inet6: address, ifindex, prefix length, scope, flags, name.
  const line = (scope: string, flags: string, name: string) =>
    `20010db8000a00000000000000000002 03 40 ${scope} ${flags} ${name}\n`;

  test("a tentative global address is waited for; link-local, settled and failed ones are not", () => {
    expect(dadPending(line("00", "c0", "eth1"))).toEqual(["eth1"]);
    expect(dadPending(line("00", "80", "eth1") + line("20", "c0", "eth1"))).toEqual([]);
    // DAD failed: the address stays tentative for ever; waiting would never end.
    expect(dadPending(line("00", "c8", "eth1"))).toEqual([]);
    expect(dadPending(line("00", "40", "eth1") + line("00", "40", "eth2"))).toEqual([
      "eth1",
      "eth2",
    ]);
    expect(dadPending("")).toEqual([]);
  });

  test("startMycelium makes the key directory 0700 and monitors the service, unless a service file has it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "myc-start-"));
    try {
      const key = join(dir, "state/mycelium/key.bin");
      const c = parseVmConfig(`[mycelium]\nkey_file = "${key}"\n`, "vm.toml").config.mycelium;
      if (!c) throw new Error("no mycelium section");
      const monitored: [string, ServiceSpec][] = [];
      const sup = {
        has: (n: string) => monitored.some(([m]) => m === n),
        monitor: (n: string, s: ServiceSpec) => void monitored.push([n, s]),
      };
      startMycelium(sup, c);
      // This host's addresses are settled, or are within the wait's bound.
      for (let i = 0; i < 200 && !monitored.length; i++) await Bun.sleep(100);
      expect(statSync(join(dir, "state/mycelium")).mode & 0o777).toBe(0o700);
      expect(monitored.map(([n, s]) => [n, s.exec])).toEqual([
        [
          MYCELIUM_SERVICE,
          `/usr/bin/mycelium -k ${key} --tun-name mycelium --api-addr 127.0.0.1:8989`,
        ],
      ]);
      startMycelium(sup, c);
      await Bun.sleep(300);
      expect(monitored.length).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
