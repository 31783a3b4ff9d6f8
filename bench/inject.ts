/**
 * Injector benchmarks, each against a baseline in the same run:
 *   - inject hero-init (+ pre-init, a config, a service) into a 2 GB ext4
 *     image with `hero-init inject` (debugfs on a copy, read-back, e2fsck)
 *     vs `virt-customize --copy-in` of the same files (libguestfs boots an
 *     appliance VM; TCG here);
 *   - add hero-init to a Debian-sized initramfs by appending a segment vs
 *     unpacking and rebuilding the whole archive with GNU cpio.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel } from "../host/kernel.ts";
import { out, printRatios, ratio, sh } from "./lib.ts";

const ROOT = join(import.meta.dir, "..");
const HERO = join(ROOT, "dist/hero-init");
const dir = mkdtempSync(join(tmpdir(), "hero-bench-inject-"));
const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
};

try {
  // Inputs: the same files for both tools.
  const files = join(dir, "files");
  mkdirSync(join(files, "etc/zinit"), { recursive: true });
  writeFileSync(join(files, "vm.toml"), 'hostname = "bench"\n');
  writeFileSync(join(files, "etc/zinit/app.yaml"), "exec: sleep 1000\n");

  // The Debian template's tree (no hero-init): the OS both tools write into.
  const tree = join(dir, "tree");
  sh(`${HERO} template build debian --format dir --out ${tree} >/dev/null 2>&1`);
  sh(
    `rm -rf ${tree}/usr/lib/hero ${tree}/etc/zinit ${tree}/etc/hero-init && rm -f ${tree}/usr/sbin/init ${tree}/usr/bin/zinit ${tree}/usr/bin/hero-init`,
  );

  // A 2 GB ext4 image of it, copied for each tool.
  const base = join(dir, "base.ext4");
  sh(`mke2fs -q -t ext4 -d ${tree} ${base} 2G`);
  const a = join(dir, "a.ext4");
  sh(`cp --sparse=always ${base} ${a}`);
  const hero = time(() =>
    sh(
      `${HERO} inject --format ext4 --rootfs ${a} --vm-config ${files}/vm.toml --services ${files}/etc/zinit --json`,
    ),
  );
  out("ext4_2g_hero_inject_s", hero);
  let virt: number | null = null;
  if (Bun.which("virt-customize")) {
    const b = join(dir, "b.ext4");
    sh(`cp --sparse=always ${base} ${b}`);
    const k = await ensureKernel();
    // libguestfs boots an appliance with the Debian kernel; supermin copies its
    // modules from /lib/modules/<ver> on the host (installed here if missing).
    // KVM aborts on these machines: force TCG, as for our own VMs.
    sh(
      `test -d /lib/modules/${k.version} || (mkdir -p /lib/modules && cp -a ${k.modulesDir} /lib/modules/)`,
    );
    const env = `LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg SUPERMIN_KERNEL=${k.vmlinuz} SUPERMIN_MODULES=/lib/modules/${k.version} LIBGUESTFS_CACHEDIR=${dir}`;
    const copy = `--mkdir /usr/lib/hero --copy-in ${HERO}:/usr/lib/hero --copy-in ${ROOT}/dist/preinit:/usr/lib/hero --mkdir /etc/hero-init --copy-in ${files}/vm.toml:/etc/hero-init --mkdir /etc/zinit --copy-in ${files}/etc/zinit/app.yaml:/etc/zinit`;
    try {
      // The appliance is built once into the cache first, so both sides are measured warm.
      sh(`${env} virt-customize --format raw -a ${b} --no-network --mkdir /warmup 2>&1`);
      virt = time(() => sh(`${env} virt-customize --format raw -a ${b} --no-network ${copy} 2>&1`));
      out("ext4_2g_virt_customize_s", virt);
    } catch (e) {
      out(
        "ext4_2g_virt_customize_s",
        `failed (${String((e as Error).message)
          .split("\n")
          .slice(-3)
          .join(" ")
          .slice(0, 300)})`,
      );
    }
  } else out("ext4_2g_virt_customize_s", "not installed (apt-get install libguestfs-tools)");
  if (virt) ratio("ratio_ext4_2g_hero_vs_virt_customize", hero / virt);

  // A Debian-sized initramfs (~ the debian template without hero-init).
  const initrd = join(dir, "debian.cpio");
  sh(`cd ${tree} && find . | LC_ALL=C sort | cpio -o -H newc --quiet > ${initrd}`);
  out("initramfs_base_mb", statSync(initrd).size / 1e6);
  const ap = join(dir, "append.cpio");
  sh(`cp ${initrd} ${ap}`);
  const append = time(() =>
    sh(`${HERO} inject --format initramfs --rootfs ${ap} --vm-config ${files}/vm.toml --json`),
  );
  const rebuildDir = join(dir, "unpacked");
  const rebuild = time(() => {
    sh(
      `rm -rf ${rebuildDir} && mkdir ${rebuildDir} && cd ${rebuildDir} && cpio -idm --quiet < ${initrd}`,
    );
    sh(
      `mkdir -p ${rebuildDir}/usr/lib/hero ${rebuildDir}/etc/hero-init && cp ${HERO} ${ROOT}/dist/preinit ${rebuildDir}/usr/lib/hero/ && cp ${files}/vm.toml ${rebuildDir}/etc/hero-init/`,
    );
    sh(
      `cd ${rebuildDir} && find . | LC_ALL=C sort | cpio -o -H newc --quiet > ${dir}/rebuilt.cpio`,
    );
  });
  out("initramfs_append_s", append);
  out("initramfs_rebuild_s", rebuild);
  ratio("ratio_initramfs_append_vs_rebuild", append / rebuild);
  printRatios();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
