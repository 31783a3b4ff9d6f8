/**
 * Attack tests of decompression (issue 13, finding 10): the attacker is an
 * image author (an initramfs or OCI image handed to `hero-init inject`) or
 * a manifest publisher (a release archive): a few MB that unpack to
 * gigabytes. The defence: every unpack stops as soon as its output passes
 * the limit (HERO_MAX_UNPACKED, 512 MiB by default), the error names the
 * file and the limit, the target is unchanged, and the memory spent stays
 * near the limit. Injection runs through the real CLI in a child process,
 * whose peak RSS (maxRSS) is compared with a run on a small, sound image.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
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
import { gzipSync } from "node:zlib";
import { writeNewc } from "../../host/cpio/newc.ts";
import { writeTar } from "../../lib/tar.ts";
import { runUpdate } from "../../update/engine.ts";
import { publishSigned } from "../../update/publish.ts";
import { makeFixture } from "../helpers/update-fixture.ts";

const MAIN = join(import.meta.dir, "../../cli/main.ts");
const MiB = 1024 ** 2;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "hero-bomb-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

/** `hero-init inject` in a child process: exit code, stderr and its peak RSS in bytes. */
function inject(format: string, target: string, env: Record<string, string> = {}, dry = false) {
  const p = Bun.spawnSync(
    [process.execPath, MAIN, "inject", "--format", format, "--rootfs", target].concat(
      dry ? ["--dry-run"] : [],
    ),
    { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" },
  );
  const maxRss = p.resourceUsage?.maxRSS;
  if (typeof maxRss !== "number") throw new Error("no resourceUsage().maxRSS from Bun.spawnSync");
  return { code: p.exitCode, err: p.stderr.toString(), maxRss };
}

/** `n` 64 MiB chunks of zeros, compressed once and concatenated (gzip members, zstd frames). */
function zeros(kind: "gzip" | "zstd", n: number): Uint8Array {
  const chunk = new Uint8Array(64 * MiB);
  const one =
    kind === "gzip" ? new Uint8Array(gzipSync(chunk, { level: 9 })) : Bun.zstdCompressSync(chunk);
  const out = new Uint8Array(one.length * n);
  for (let i = 0; i < n; i++) out.set(one, i * one.length);
  return out;
}

describe("initramfs base image bombs", () => {
  let baseline = 0;
  beforeAll(() => {
    // A small, sound gzip initramfs: what a normal run costs (hero-init read, plan, lookups).
    const ok = join(dir, "ok.img");
    writeFileSync(
      ok,
      gzipSync(
        writeNewc([{ type: "file", path: "etc/hostname", mode: 0o644, data: new Uint8Array(3) }]),
      ),
    );
    const r = inject("initramfs", ok, {}, true);
    expect(r.code).toBe(0);
    baseline = r.maxRss;
  });

  for (const kind of ["gzip", "zstd"] as const) {
    test(`1 GiB of zeros as a ${kind} initramfs is refused, unchanged, memory near the 512 MiB limit`, () => {
      const img = join(dir, `bomb-${kind}.img`);
      const bomb = zeros(kind, 16); // 16 × 64 MiB = 1 GiB unpacked
      expect(bomb.length).toBeLessThan(2 * MiB);
      writeFileSync(img, bomb);
      const before = sha(img);
      const r = inject("initramfs", img);
      expect(r.err).toContain(img);
      expect(r.err).toMatch(/unpacks to more than 512 MiB, the limit for unpacking/);
      expect(r.code).toBe(2);
      expect(sha(img)).toBe(before);
      // No temporary image left beside it, whatever its name (lib/atomic-file.ts: <img>.tmp-…).
      expect(readdirSync(dir).filter((f) => f.startsWith(`bomb-${kind}.img.`))).toEqual([]);
      // Unpacking all of it would hold 1 GiB at least; the limit holds it to about 512 MiB.
      expect(r.maxRss - baseline).toBeLessThan(800 * MiB);
    });
  }

  test("HERO_MAX_UNPACKED lowers the limit, and the memory spent with it", () => {
    const img = join(dir, "bomb-small-limit.img");
    writeFileSync(img, zeros("gzip", 16));
    const r = inject("initramfs", img, { HERO_MAX_UNPACKED: "64M" });
    expect(r.err).toMatch(/unpacks to more than 64 MiB, the limit for unpacking/);
    expect(r.code).toBe(2);
    expect(r.maxRss - baseline).toBeLessThan(256 * MiB);
  });
});

describe("OCI layer bombs", () => {
  test("a gzip layer that unpacks past the limit is refused; index.json is unchanged", () => {
    const oci = join(dir, "oci");
    const blobs = join(oci, "blobs/sha256");
    mkdirSync(blobs, { recursive: true });
    const put = (data: Uint8Array | string) => {
      const d = createHash("sha256").update(data).digest("hex");
      writeFileSync(join(blobs, d), data);
      return {
        digest: `sha256:${d}`,
        size: typeof data === "string" ? Buffer.byteLength(data) : data.length,
      };
    };
    const layer = put(zeros("gzip", 1)); // 64 MiB of zeros
    const config = put(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: ["sha256:00"] },
      }),
    );
    const manifest = put(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
      }),
    );
    writeFileSync(join(oci, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(oci, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }],
      }),
    );
    const before = sha(join(oci, "index.json"));
    const r = inject("oci", oci, { HERO_MAX_UNPACKED: "16M" });
    expect(r.err).toContain(layer.digest);
    expect(r.err).toMatch(/unpacks to more than 16 MiB/);
    expect(r.code).toBe(2);
    expect(sha(join(oci, "index.json"))).toBe(before);
  });
});

describe("release archive bombs (a signed manifest's .tar.gz)", () => {
  test("an archive whose member unpacks past the limit is refused and nothing is installed", async () => {
    const f = await makeFixture();
    const saved = process.env.HERO_MAX_UNPACKED;
    try {
      process.env.HERO_MAX_UNPACKED = "16M";
      // A sound tar.gz whose one member is 64 MiB: the publisher's signature and sha256 are right.
      const archive = new Uint8Array(
        gzipSync(
          writeTar([{ path: "tool", type: "file", mode: 0o755, data: new Uint8Array(64 * MiB) }]),
          {
            level: 9,
          },
        ),
      );
      mkdirSync(join(f.pub, "vm"), { recursive: true });
      writeFileSync(join(f.pub, "vm/tool.tar.gz"), archive);
      const text = `version = 1
expires = ${new Date(Date.now() + 86400_000).toISOString().replace(/\.\d+Z$/, "Z")}
[[vm.binaries]]
name = "tool"
version = "1.0.0"
url = "${f.server.url}vm/tool.tar.gz"
sha256 = "${createHash("sha256").update(archive).digest("hex")}"
size = ${archive.length}
`;
      publishSigned(join(f.pub, "bootstrapper.toml"), new TextEncoder().encode(text), f.key, "t");
      const log: string[] = [];
      const r = await runUpdate(f.source, f.paths, {
        restart: async () => {},
        health: async () => [],
        log: (m) => log.push(m),
      });
      expect(r.error).toMatch(/tool 1\.0\.0: the release archive unpacks to more than 16 MiB/);
      expect(r.outcome).toBe("failed");
      expect(existsSync(join(f.paths.pkgs, "tool/current"))).toBe(false);
      expect(existsSync(join(f.root, "usr/bin/tool"))).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.HERO_MAX_UNPACKED;
      else process.env.HERO_MAX_UNPACKED = saved;
      await f.close();
    }
  });
});
