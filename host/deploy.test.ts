/**
 * deployVm without booting: what it promises before the VM exists — the
 * mycelium key in the image (0600) and kept in <out> so a re-deploy keeps
 * the address, the address and UI URL in the result and deployment.json.
 * Booting these images is test/e2e's job.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addressOfKey } from "../lib/mycelium.ts";
import { deployVm } from "./deploy.ts";
import { ensureKernel, type Kernel } from "./kernel.ts";

setDefaultTimeout(300_000);
let kernel: Kernel;
let dir: string;
const vm = { hostname: "myc-1", mycelium: { peers: ["tcp://192.0.2.1:9651"] } };

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-deploy-unit-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One file of a newc archive, as GNU cpio extracts it, with its mode from `cpio -tv`. */
function fromCpio(archive: string, path: string): { data: Uint8Array; mode: string } {
  const x = Bun.spawnSync(["cpio", "-i", "--quiet", "--to-stdout", path], {
    stdin: Bun.file(archive),
    stdout: "pipe",
    stderr: "pipe",
  });
  expect(x.exitCode).toBe(0);
  const t = Bun.spawnSync(["cpio", "-t", "-v", "--quiet", path], {
    stdin: Bun.file(archive),
    stdout: "pipe",
  });
  return { data: new Uint8Array(x.stdout), mode: t.stdout.toString().split(" ")[0] ?? "" };
}

describe("deployVm: mycelium before boot", () => {
  test("the key is in the image (0600), the address and UI URL are in the result, a re-deploy keeps them", async () => {
    const out = join(dir, "a");
    const d = await deployVm({ template: "minimal", format: "initramfs", out, vm, kernel });
    const kept = new Uint8Array(readFileSync(join(out, "mycelium.key")));
    expect(kept.length).toBe(32);
    expect(statSync(join(out, "mycelium.key")).mode & 0o777).toBe(0o600);
    const inImage = fromCpio(d.image, "var/lib/mycelium/key.bin");
    expect(inImage.data).toEqual(kept);
    expect(inImage.mode).toBe("-rw-------");
    // addressOfKey is checked against b3sum (lib/mycelium.test.ts) and the real daemon.
    expect(d.myceliumAddress).toBe(addressOfKey(kept));
    expect(d.uiUrl).toBe(`http://[${d.myceliumAddress}]:9999/`);
    const json = JSON.parse(readFileSync(join(out, "deployment.json"), "utf8"));
    expect(json).toMatchObject({ myceliumAddress: d.myceliumAddress, uiUrl: d.uiUrl });
    // The key itself is never in deployment.json.
    expect(readFileSync(join(out, "deployment.json"), "utf8")).not.toContain(
      Buffer.from(kept).toString("hex"),
    );

    const again = await deployVm({ template: "minimal", format: "initramfs", out, vm, kernel });
    expect(again.myceliumAddress).toBe(d.myceliumAddress);
    expect(fromCpio(again.image, "var/lib/mycelium/key.bin").data).toEqual(kept);

    const other = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "b"),
      vm,
      kernel,
    });
    expect(other.myceliumAddress).not.toBe(d.myceliumAddress);
  });

  test("without [mycelium]: no key, no address, no URL", async () => {
    const out = join(dir, "c");
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out,
      vm: { hostname: "plain" },
      kernel,
    });
    expect(d.myceliumAddress).toBeNull();
    expect(d.uiUrl).toBeNull();
    expect(existsSync(join(out, "mycelium.key"))).toBe(false);
  });
});
