/**
 * The injector against every format, with real e2fsprogs and GNU cpio:
 * inject, read back, e2fsck clean, byte-identical second run, dry run writes
 * nothing, bad input refused with the target unchanged.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { isHeroError } from "../lib/errors.ts";
import { LOAD_ORDER_HEADER } from "../lib/kernel-modules.ts";
import { LAYOUT } from "../lib/layout.ts";
import { writeTar } from "../lib/tar.ts";
import { readConcatenated, writeNewc } from "./cpio/newc.ts";
import { readInterpreter } from "./elf/private-loader.ts";
import { findSegment } from "./formats/initramfs.ts";
import { type InjectOptions, inject } from "./inject.ts";

setDefaultTimeout(60_000);
const dir = mkdtempSync(join(tmpdir(), "hero-inject-"));
const bin = join(dir, "bin");
const enc = new TextEncoder();
const sha = (b: Uint8Array | Buffer) => createHash("sha256").update(b).digest("hex");
const fileSha = (p: string) => sha(readFileSync(p));
let base: Omit<InjectOptions, "format" | "target">;

function sh(cmd: string): string {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

async function refused(o: InjectOptions, re: RegExp): Promise<void> {
  let err: unknown = null;
  try {
    await inject(o);
  } catch (e) {
    err = e;
  }
  expect(isHeroError(err, "input")).toBe(true);
  expect(String(err)).toMatch(re);
}

beforeAll(() => {
  mkdirSync(bin);
  // A small dynamic glibc executable stands in for the 100 MB hero-init: same ELF shape.
  writeFileSync(join(dir, "hi.c"), "int main(void){return 0;}\n");
  sh(`cc -O2 -o ${bin}/hero-init ${dir}/hi.c`);
  sh(`cp ${join(import.meta.dir, "../dist/preinit")} ${bin}/preinit`);
  const tool = enc.encode("#!/bin/sh\necho tool v1\n");
  writeFileSync(join(dir, "tool"), tool);
  const archive = gzipSync(
    writeTar([
      { path: "pkg/mycelium", type: "file", mode: 0o755, data: enc.encode("MYCELIUM-BINARY") },
    ]),
  );
  writeFileSync(join(dir, "mycelium.tar.gz"), archive);
  writeFileSync(
    join(dir, "bootstrapper.toml"),
    `version = 1\n[[vm.binaries]]\nname = "tool"\nversion = "1.0.0"\nurl = "file://${dir}/tool"\nsha256 = "${sha(tool)}"\nsize = ${tool.length}\n` +
      `[[vm.binaries]]\nname = "mycelium"\nversion = "0.7.10"\nurl = "file://${dir}/mycelium.tar.gz"\nsha256 = "${sha(archive)}"\nsize = ${archive.length}\narchive_member = "mycelium"\n`,
  );
  base = {
    heroInit: join(bin, "hero-init"),
    manifest: join(dir, "bootstrapper.toml"),
    vmConfig: `hostname = "inj"\n`,
    services: {
      web: "exec: tool --serve\nafter: [mycelium]\n",
      mycelium: "exec: mycelium -k /var/lib/mycelium/key.bin\n",
    },
    secrets: { "/etc/hero-init/agent.token": enc.encode("s3cret") },
    cacheDir: join(dir, "cache"),
    mtime: 1_700_000_000,
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A glibc-looking rootfs directory (loader + libc copied from the host). */
function glibcRoot(path: string): string {
  mkdirSync(join(path, "lib/x86_64-linux-gnu"), { recursive: true });
  mkdirSync(join(path, "lib64"), { recursive: true });
  mkdirSync(join(path, "sbin"), { recursive: true });
  sh(
    `cp -L /lib/x86_64-linux-gnu/libc.so.6 ${path}/lib/x86_64-linux-gnu/ && cp -L /lib64/ld-linux-x86-64.so.2 ${path}/lib64/`,
  );
  writeFileSync(join(path, "sbin/init"), "#!/bin/sh\necho original init\n", { mode: 0o755 });
  return path;
}

describe("dir", () => {
  test("inject, read back, second run changes nothing", async () => {
    const root = glibcRoot(join(dir, "root1"));
    const r = await inject({ ...base, format: "dir", target: root });
    expect(r.privateLoader).toBe(false);
    expect(readlinkSync(join(root, "sbin/init"))).toBe("/usr/lib/hero/preinit");
    expect(readFileSync(join(root, "sbin/init.before-hero"), "utf8")).toContain("original init");
    expect(fileSha(join(root, "usr/lib/hero/hero-init"))).toBe(fileSha(join(bin, "hero-init")));
    expect(readlinkSync(join(root, "usr/bin/zinit"))).toBe("hero-init");
    expect(readFileSync(join(root, "usr/lib/hero/pkgs/mycelium/0.7.10/mycelium"), "utf8")).toBe(
      "MYCELIUM-BINARY",
    );
    expect(readlinkSync(join(root, "usr/bin/tool"))).toBe("/usr/lib/hero/pkgs/tool/current/tool");
    expect(readlinkSync(join(root, "usr/lib/hero/pkgs/tool/current"))).toBe("1.0.0");
    expect(readFileSync(join(root, "etc/zinit/web.yaml"), "utf8")).toContain("tool --serve");
    expect(lstatSync(join(root, "etc/hero-init/vm.toml")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(root, "etc/hero-init/agent.token")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(root, "etc/hero-init")).mode & 0o777).toBe(0o700);
    const before = sh(
      `cd ${root} && find . -printf '%p %m %s %T@ %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
    );
    const again = await inject({ ...base, format: "dir", target: root });
    expect(again.changed).toBe(0);
    expect(
      sh(
        `cd ${root} && find . -printf '%p %m %s %T@ %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
      ),
    ).toBe(before);
  });

  test("a rootfs without glibc gets the private loader and a patched hero-init", async () => {
    const root = join(dir, "busybox-root");
    mkdirSync(join(root, "bin"), { recursive: true });
    const r = await inject({ ...base, format: "dir", target: root });
    expect(r.privateLoader).toBe(true);
    expect(r.notes.join()).toContain("no glibc loader");
    expect(readInterpreter(readFileSync(join(root, "usr/lib/hero/hero-init")))).toBe(
      LAYOUT.privateLoader,
    );
    for (const f of ["ld.so", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"])
      expect(existsSync(join(root, "usr/lib/hero", f))).toBe(true);
    expect(existsSync(join(root, "lib"))).toBe(false);
  });

  test("a manifest can pin hero-init itself (and its pre-init)", async () => {
    const root = glibcRoot(join(dir, "root-pinned"));
    writeFileSync(join(dir, "hi2.c"), "int main(void){return 2;}\n");
    sh(`cc -O0 -o ${dir}/hero-init-2 ${dir}/hi2.c`);
    const pinned = readFileSync(join(dir, "hero-init-2"));
    const m = `${readFileSync(join(dir, "bootstrapper.toml"), "utf8")}[[vm.binaries]]\nname = "hero-init"\nversion = "2.0.0"\nurl = "file://${dir}/hero-init-2"\nsha256 = "${sha(pinned)}"\nsize = ${pinned.length}\n`;
    writeFileSync(join(dir, "pinned.toml"), m);
    const r = await inject({
      ...base,
      format: "dir",
      target: root,
      manifest: join(dir, "pinned.toml"),
    });
    expect(r.notes).toContain("hero-init: the version the manifest pins");
    expect(fileSha(join(root, "usr/lib/hero/hero-init"))).toBe(sha(pinned));
    expect(existsSync(join(root, "usr/lib/hero/pkgs/hero-init"))).toBe(false);
  });

  test("absolute symlinks in the rootfs are followed inside it, not on the host", async () => {
    const root = glibcRoot(join(dir, "root-links"));
    mkdirSync(join(root, "real-etc"));
    symlinkSync("/real-etc", join(root, "etc"));
    await inject({ ...base, format: "dir", target: root });
    expect(existsSync(join(root, "real-etc/zinit/web.yaml"))).toBe(true);
  });

  test("kernel modules come with the load-order file the guest reads instead of modules.dep", async () => {
    const kdir = join(dir, "kernel/lib/modules/6.1.0-test");
    mkdirSync(join(kdir, "kernel/fs"), { recursive: true });
    writeFileSync(
      join(kdir, "modules.dep"),
      "kernel/fs/ext4.ko: kernel/fs/jbd2.ko\nkernel/fs/jbd2.ko:\nkernel/fs/xfs.ko:\n",
    );
    writeFileSync(join(kdir, "modules.builtin"), "kernel/net/unix/unix.ko\n");
    for (const m of ["ext4", "jbd2", "xfs"]) writeFileSync(join(kdir, `kernel/fs/${m}.ko`), m);
    const root = glibcRoot(join(dir, "root-modules"));
    await inject({
      ...base,
      format: "dir",
      target: root,
      kernelModules: { dir: kdir, names: ["ext4", "unix"] },
    });
    const mods = join(root, "lib/modules/6.1.0-test");
    expect(readFileSync(join(mods, LAYOUT.moduleLoadOrder), "utf8")).toBe(
      `${LOAD_ORDER_HEADER}6.1.0-test\nkernel/fs/jbd2.ko:\nkernel/fs/ext4.ko: kernel/fs/jbd2.ko\nbuiltin unix\n`,
    );
    // The full modules.dep still comes along: a vm.toml edited later can name any module.
    expect(readFileSync(join(mods, "modules.dep"), "utf8")).toContain("xfs.ko");
    expect(existsSync(join(mods, "kernel/fs/xfs.ko"))).toBe(false);
  });

  test("dry run returns the plan and writes nothing", async () => {
    const root = glibcRoot(join(dir, "root-dry"));
    const before = sh(`cd ${root} && find . | sort`);
    const r = await inject({ ...base, format: "dir", target: root, dryRun: true });
    expect(r.plan.some((e) => e.path === "/usr/lib/hero/hero-init")).toBe(true);
    expect(sh(`cd ${root} && find . | sort`)).toBe(before);
  });

  test("bad input is refused before anything is written", async () => {
    const root = glibcRoot(join(dir, "root-bad"));
    const before = sh(`cd ${root} && find . | sort`);
    await refused(
      { ...base, format: "dir", target: root, services: { "../evil": "exec: x\n" } },
      /bad service name/,
    );
    await refused(
      { ...base, format: "dir", target: root, services: { web: "exec: [\n" } },
      /web\.yaml/,
    );
    await refused(
      { ...base, format: "dir", target: root, vmConfig: `hostname = "bad_name!"\n` },
      /hostname/,
    );
    const badHash = readFileSync(join(dir, "bootstrapper.toml"), "utf8").replace(
      /sha256 = "[0-9a-f]{64}"/,
      `sha256 = "${"0".repeat(64)}"`,
    );
    writeFileSync(join(dir, "bad.toml"), badHash);
    await refused(
      {
        ...base,
        format: "dir",
        target: root,
        manifest: join(dir, "bad.toml"),
        cacheDir: join(dir, "cache-bad"),
      },
      /has sha256 .* the manifest says 0{64}/,
    );
    writeFileSync(
      join(dir, "escape.toml"),
      badHash.replace(`name = "tool"`, `name = "../../sbin/init"`),
    );
    await refused(
      { ...base, format: "dir", target: root, manifest: join(dir, "escape.toml") },
      /vm\.binaries\.0\.name/,
    );
    expect(sh(`cd ${root} && find . | sort`)).toBe(before);
  });
});

describe("initramfs", () => {
  test("append a segment to a gzip, zstd or plain initramfs; re-run is byte-identical", async () => {
    const orig = writeNewc([
      { type: "dir", path: "sbin", mode: 0o755 },
      { type: "file", path: "sbin/init", mode: 0o755, data: enc.encode("#!/bin/sh\n") },
    ]);
    for (const [kind, bytes] of [
      ["plain", orig],
      ["gzip", gzipSync(orig)],
      ["zstd", Bun.zstdCompressSync(orig)],
    ] as const) {
      const img = join(dir, `initrd-${kind}`);
      writeFileSync(img, bytes);
      await inject({ ...base, format: "initramfs", target: img });
      const out = new Uint8Array(readFileSync(img));
      expect(out.subarray(0, bytes.length)).toEqual(new Uint8Array(bytes)); // the original is untouched
      const seg = findSegment(out);
      expect(seg).toBe(bytes.length);
      const names = readConcatenated(out.subarray(seg))
        .flat()
        .map((r) => r.path);
      expect(names).toContain("usr/lib/hero/hero-init");
      expect(names).toContain("init");
      const listed = sh(`cd ${dir} && tail -c +${seg + 1} ${img} | cpio -itv 2>/dev/null`);
      expect(listed).toMatch(/lrwxrwxrwx .* sbin\/init -> \/usr\/lib\/hero\/preinit/);
      const h = fileSha(img);
      const again = await inject({ ...base, format: "initramfs", target: img });
      expect(again.changed).toBe(0);
      expect(fileSha(img)).toBe(h);
    }
  });

  test("a changed input replaces hero-init's segment instead of stacking another", async () => {
    const img = join(dir, "initrd-replace");
    writeFileSync(img, writeNewc([{ type: "dir", path: "etc", mode: 0o755 }]));
    await inject({ ...base, format: "initramfs", target: img });
    await inject({ ...base, format: "initramfs", target: img, vmConfig: `hostname = "other"\n` });
    const segs = readConcatenated(new Uint8Array(readFileSync(img)));
    expect(segs).toHaveLength(2);
  });

  test("same inputs and SOURCE_DATE_EPOCH give identical bytes", async () => {
    const a = join(dir, "repro-a");
    const b = join(dir, "repro-b");
    for (const p of [a, b])
      writeFileSync(p, writeNewc([{ type: "dir", path: "etc", mode: 0o755 }]));
    await inject({ ...base, format: "initramfs", target: a });
    await inject({ ...base, format: "initramfs", target: b });
    expect(fileSha(a)).toBe(fileSha(b));
  });
});

describe("ext4", () => {
  const mkimage = (name: string, sizeMB: number, from: string) => {
    const img = join(dir, name);
    sh(
      `E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -t ext4 -d ${from} -U 5e1f0c6a-0000-4000-8000-000000000001 -E hash_seed=5e1f0c6a-0000-4000-8000-000000000001,root_owner=0:0 ${img} ${sizeMB}M`,
    );
    return img;
  };

  test("inject into an existing image: debugfs read-back, e2fsck clean, second run identical", async () => {
    const img = mkimage("root.ext4", 64, glibcRoot(join(dir, "ext4-src")));
    await inject({ ...base, format: "ext4", target: img });
    expect(sh(`debugfs -R "stat /usr/lib/hero/hero-init" ${img} 2>/dev/null`)).toMatch(
      /Mode:\s+0755/,
    );
    expect(sh(`debugfs -R "cat /etc/zinit/web.yaml" ${img} 2>/dev/null`)).toContain("tool --serve");
    expect(sha(Bun.spawnSync(["debugfs", "-R", "cat /usr/lib/hero/hero-init", img]).stdout)).toBe(
      fileSha(join(bin, "hero-init")),
    );
    expect(sh(`debugfs -R "stat /etc/hero-init/vm.toml" ${img} 2>/dev/null`)).toMatch(
      /Mode:\s+0600/,
    );
    expect(sh(`debugfs -R "cat /sbin/init.before-hero" ${img} 2>/dev/null`)).toContain(
      "original init",
    );
    expect(Bun.spawnSync(["e2fsck", "-fn", img]).exitCode).toBe(0);
    const h = fileSha(img);
    expect((await inject({ ...base, format: "ext4", target: img })).changed).toBe(0);
    expect(fileSha(img)).toBe(h);
  });

  test("usr-merge: /sbin -> usr/sbin is followed inside the image, not replaced", async () => {
    const src = glibcRoot(join(dir, "ext4-usrmerge-src"));
    sh(`mkdir -p ${src}/usr && mv ${src}/sbin ${src}/usr/sbin && ln -s usr/sbin ${src}/sbin`);
    const img = mkimage("usrmerge.ext4", 64, src);
    await inject({ ...base, format: "ext4", target: img });
    expect(sh(`debugfs -R "stat /sbin" ${img} 2>/dev/null`)).toMatch(/Type: symlink/);
    expect(sh(`debugfs -R "stat /usr/sbin/init" ${img} 2>/dev/null`)).toMatch(/Type: symlink/);
    expect(sh(`debugfs -R "cat /usr/sbin/init.before-hero" ${img} 2>/dev/null`)).toContain(
      "original init",
    );
    expect(Bun.spawnSync(["e2fsck", "-fn", img]).exitCode).toBe(0);
    expect((await inject({ ...base, format: "ext4", target: img })).changed).toBe(0);
  });

  test("same image, inputs and SOURCE_DATE_EPOCH give identical bytes", async () => {
    const img = mkimage("repro.ext4", 64, glibcRoot(join(dir, "ext4-repro-src")));
    const copies = [join(dir, "repro-1.ext4"), join(dir, "repro-2.ext4")];
    for (const c of copies) {
      sh(`cp ${img} ${c}`);
      await inject({ ...base, format: "ext4", target: c });
      await Bun.sleep(1100); // a clock tick between runs must not matter
    }
    expect(fileSha(copies[0] as string)).toBe(fileSha(copies[1] as string));
  });

  test("a full image is refused and left byte for byte as it was", async () => {
    const src = glibcRoot(join(dir, "ext4-full-src"));
    // Random bytes: zeros would be stored sparse and take no space.
    writeFileSync(
      join(src, "filler2"),
      Buffer.concat(
        Array.from({ length: 32 }, () => crypto.getRandomValues(new Uint8Array(65536))),
      ),
    );
    const img = mkimage("full.ext4", 8, src);
    const big = join(dir, "big-bin");
    writeFileSync(big, readFileSync(join(bin, "hero-init")));
    writeFileSync(
      big,
      Buffer.concat(
        Array.from({ length: 128 }, () => crypto.getRandomValues(new Uint8Array(65536))),
      ),
      { flag: "a" },
    );
    const h = fileSha(img);
    await refused(
      { ...base, format: "ext4", target: img, heroInit: big, preinit: join(bin, "preinit") },
      /debugfs failed|read-back|e2fsck/,
    );
    expect(fileSha(img)).toBe(h);
    expect(existsSync(join(dir, ".full.ext4.hero-tmp"))).toBe(false);
  });

  test("an image another process holds is refused", async () => {
    const img = mkimage("held.ext4", 64, glibcRoot(join(dir, "ext4-held-src")));
    const holder = Bun.spawn(["sh", "-c", `exec 3<${img}; exec sleep 30`]);
    // Wait until the holder really has the image open (its fd 3), not for a fixed time.
    const holds = () => {
      try {
        return readlinkSync(`/proc/${holder.pid}/fd/3`) === img;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 200 && !holds(); i++) await Bun.sleep(10);
    expect(holds()).toBe(true);
    try {
      await refused({ ...base, format: "ext4", target: img }, /is open in process/);
    } finally {
      holder.kill();
    }
  });
});

describe("oci", () => {
  const oci = join(dir, "oci");
  const umoci = (args: string) => sh(`umoci --log error ${args}`);
  const layers = () => {
    const idx = JSON.parse(readFileSync(join(oci, "index.json"), "utf8"));
    const m = JSON.parse(
      readFileSync(join(oci, "blobs", ...idx.manifests[0].digest.split(":")), "utf8"),
    );
    return m.layers as { digest: string; annotations?: Record<string, string> }[];
  };

  beforeAll(() => {
    umoci(`init --layout ${oci}`);
    umoci(`new --image ${oci}:latest`);
    const bundle = join(dir, "oci-bundle");
    umoci(`unpack --image ${oci}:latest ${bundle}`);
    glibcRoot(join(bundle, "rootfs"));
    umoci(`repack --image ${oci}:latest ${bundle}`);
    rmSync(bundle, { recursive: true, force: true });
  });

  test("adds exactly one layer that skopeo and umoci accept; re-runs replace it, never stack", async () => {
    const before = layers().length;
    await inject({ ...base, format: "oci", target: `${oci}:latest` });
    expect(layers()).toHaveLength(before + 1);
    expect(layers().at(-1)?.annotations?.["org.hero-init.layer"]).toBe("true");
    // skopeo verifies every digest while copying; umoci applies the layers.
    sh(`skopeo copy --quiet oci:${oci}:latest dir:${join(dir, "oci-copy")}`);
    const bundle = join(dir, "oci-check");
    umoci(`unpack --image ${oci}:latest ${bundle}`);
    expect(readlinkSync(join(bundle, "rootfs/sbin/init"))).toBe("/usr/lib/hero/preinit");
    expect(fileSha(join(bundle, "rootfs/usr/lib/hero/hero-init"))).toBe(
      fileSha(join(bin, "hero-init")),
    );
    expect(readFileSync(join(bundle, "rootfs/etc/zinit/web.yaml"), "utf8")).toContain(
      "tool --serve",
    );
    const idx = fileSha(join(oci, "index.json"));
    expect((await inject({ ...base, format: "oci", target: `${oci}:latest` })).changed).toBe(0);
    expect(fileSha(join(oci, "index.json"))).toBe(idx);
    await inject({
      ...base,
      format: "oci",
      target: `${oci}:latest`,
      vmConfig: `hostname = "changed"\n`,
    });
    expect(layers()).toHaveLength(before + 1);
    sh(`skopeo inspect --raw oci:${oci}:latest > /dev/null`);
    const referenced = new Set(layers().map((l) => l.digest.split(":")[1]));
    const blobs = sh(`ls ${oci}/blobs/sha256`).split("\n").filter(Boolean);
    expect(blobs.filter((b) => referenced.has(b))).toHaveLength(layers().length);
  });
});
