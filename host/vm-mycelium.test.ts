/**
 * mycelium on every VM by default: the pure decision, and deployVm with a
 * signed manifest that ships a [vm] mycelium (no boot: the key and the
 * config in the image are what the VM will run with; booting such a VM is
 * test/e2e/mycelium.test.ts's job).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync as exists, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseManifest } from "../lib/manifest.ts";
import { addressOfKey } from "../lib/mycelium.ts";
import { type Fixture, makeFixture } from "../test/helpers/update-fixture.ts";
import { deployVm } from "./deploy.ts";
import { ensureKernel, type Kernel } from "./kernel.ts";
import { defaultMycelium } from "./vm-mycelium.ts";

setDefaultTimeout(300_000);

const manifest = (vm: string) =>
  parseManifest(
    `version = 1\n${vm ? `[[vm.binaries]]\nname = "${vm}"\nversion = "0.7.0"\nurl = "http://x/${vm}"\nsha256 = "${"0".repeat(64)}"\nsize = 1\n${vm === "mycelium" ? 'path = "/opt/bin/mycelium"\n' : ""}` : ""}`,
    "m.toml",
  );

describe("defaultMycelium (pure)", () => {
  test("the manifest's [vm] mycelium is added where the manifest installs it", () => {
    const r = defaultMycelium({ hostname: "a" }, manifest("mycelium"), false);
    expect(r.added).toBe(true);
    expect(r.config).toEqual({ hostname: "a", mycelium: { binary: "/opt/bin/mycelium" } });
    expect(r.note).toContain("added by default");
  });
  test("opting out, a [mycelium] of the operator's, or no mycelium in the manifest: unchanged", () => {
    const cfg = { hostname: "a" };
    expect(defaultMycelium(cfg, manifest("mycelium"), true)).toMatchObject({
      added: false,
      config: cfg,
      note: "mycelium: left out (opted out)",
    });
    const own = { mycelium: { peers: ["tcp://192.0.2.1:9651"] } };
    expect(defaultMycelium(own, manifest("mycelium"), false).config).toBe(own);
    expect(defaultMycelium(cfg, manifest("zinit"), false).added).toBe(false);
    expect(defaultMycelium(cfg, null, false).note).toContain("ships no [vm] mycelium");
  });
});

describe("deployVm adds mycelium by default", () => {
  let f: Fixture;
  let kernel: Kernel;
  let dir: string;
  beforeAll(async () => {
    kernel = await ensureKernel();
    dir = mkdtempSync(join(tmpdir(), "hero-deploy-myc-"));
    f = await makeFixture();
    f.addBinary("mycelium", "0.7.0", "not really mycelium\n", ["mycelium"], "vm");
    f.publish(1);
  });
  afterAll(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cpioFile = (archive: string, path: string) =>
    Bun.spawnSync(["cpio", "-i", "--quiet", "--to-stdout", path], {
      stdin: Bun.file(archive),
      stdout: "pipe",
    }).stdout;

  test("a VM deployed with the manifest gets [mycelium], a generated key and its address", async () => {
    const out = join(dir, "on");
    const said: string[] = [];
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out,
      manifest: join(f.pub, "bootstrapper.toml"),
      vm: { hostname: "myc-default" },
      kernel,
      progress: (m) => said.push(m),
    });
    const key = new Uint8Array(readFileSync(join(out, "mycelium.key")));
    expect(d.myceliumAddress).toBe(addressOfKey(key));
    expect(said.join("\n")).toContain("mycelium: added by default");
    expect(new Uint8Array(cpioFile(d.image, "var/lib/mycelium/key.bin"))).toEqual(key);
    const vmToml = cpioFile(d.image, "etc/hero-init/vm.toml").toString();
    expect(vmToml).toMatch(/\[mycelium\]\s*\nbinary = "\/usr\/bin\/mycelium"/);
  });

  test("opted out: no [mycelium], no key, no address", async () => {
    const out = join(dir, "off");
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out,
      manifest: join(f.pub, "bootstrapper.toml"),
      vm: { hostname: "myc-off" },
      mycelium: false,
      kernel,
    });
    expect(d.myceliumAddress).toBeNull();
    expect(exists(join(out, "mycelium.key"))).toBe(false);
    expect(cpioFile(d.image, "etc/hero-init/vm.toml").toString()).not.toContain("[mycelium]");
  });
});
