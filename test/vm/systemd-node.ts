/**
 * A fresh node for the VM tests: the debian-systemd template's rootfs
 * (debootstrap with systemd, udev, dbus, openssh-server, sudo) on an ext4
 * disk, booted with the image's own systemd as PID 1. No hero-init is
 * injected: the operator's copy sits at /root/hero-init, as if it had just
 * been copied onto the machine. The test reaches it like an operator, with
 * the host's ssh client and a key in root's authorized_keys.
 *
 * The Debian kernel has virtio-blk and ext4 as modules, so the boot needs
 * an initramfs; this one is the classic minimum (the role Debian's
 * initramfs-tools plays on a real node): Debian's static busybox loads the
 * disk, network and TUN modules, mounts /dev/vda, hands /proc, /sys, /dev
 * and a tmpfs /run over and switch_roots into /sbin/init. Nothing of
 * hero-init is in it.
 *
 * The same disk can be a zinit-managed node instead (`init: "zinit"`): the
 * real zinit 0.2.14 (test/vendor.ts) as PID 1 (/sbin/init execs `zinit
 * init`), with three zinit services standing in for what systemd did:
 * hostname, devpts and /tmp; the network (ip); sshd.
 */
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { entriesFromDir } from "../../host/cpio/from-dir.ts";
import { writeNewc } from "../../host/cpio/newc.ts";
import { type Kernel, moduleClosure } from "../../host/kernel.ts";
import { loadTemplate, templateBase } from "../../host/templates.ts";
import { runChecked } from "../../sys/command.ts";
import { until } from "../helpers/poll.ts";
import { vendorBinary } from "../vendor.ts";
import { ext4FromDir } from "./ext4-disk.ts";

/** Modules the initramfs loads: the disk, ext4, the NIC, and TUN for mycelium. */
const MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net", "tun"];

/** The busybox initramfs that mounts /dev/vda and execs its /sbin/init. */
export async function switchRootInitramfs(path: string, kernel: Kernel): Promise<string> {
  const stage = mkdtempSync(join(dirname(path), ".initrd-"));
  try {
    const mods = await moduleClosure(kernel, MODULES);
    for (const d of ["bin", "dev", "proc", "sys", "newroot"]) mkdirSync(join(stage, d));
    cpSync("/bin/busybox", join(stage, "bin/busybox"));
    for (const m of mods) {
      mkdirSync(dirname(join(stage, "mods", m)), { recursive: true });
      cpSync(join(kernel.modulesDir, m), join(stage, "mods", m));
    }
    const bb = "/bin/busybox";
    const script = `#!${bb} sh
${bb} mount -t proc proc /proc
${bb} mount -t devtmpfs dev /dev
${mods.map((m) => `${bb} insmod /mods/${m}`).join("\n")}
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do ${bb} usleep 100000; i=$((i+1)); done
${bb} mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; ${bb} poweroff -f; }
${bb} mount -t sysfs sys /newroot/sys
${bb} mount -t tmpfs -o mode=0755,nosuid,nodev run /newroot/run
${bb} mount --move /proc /newroot/proc
${bb} mount --move /dev /newroot/dev
exec ${bb} switch_root /newroot /sbin/init
`;
    writeFileSync(join(stage, "init"), script, { mode: 0o755 });
    writeFileSync(path, writeNewc(entriesFromDir(stage)));
    return path;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Options of {@link systemdNodeDisk}. */
export interface NodeDiskOptions {
  /** root's authorized_keys line (the test's ssh key). */
  authorizedKey: string;
  /** Extra files (path in the image → content and mode), e.g. /root/hero-init. */
  files?: Record<string, { data: Uint8Array | string; mode: number }>;
  sizeMB?: number;
  /** PID 1: the image's systemd (default) or the real zinit. */
  init?: "systemd" | "zinit";
}

/** zinit services that do what systemd and networkd did on the systemd node. */
const ZINIT_BASE: Record<string, string> = {
  "/etc/zinit/early.yaml":
    'exec: /bin/sh -c "hostname node1 && mkdir -p /dev/pts /run/sshd && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /tmp"\noneshot: true\n',
  "/etc/zinit/network.yaml":
    'exec: /bin/sh -c "ip link set lo up && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2"\noneshot: true\nafter:\n  - early\n',
  "/etc/zinit/sshd.yaml": "exec: /usr/sbin/sshd -D -e\nafter:\n  - network\n",
};

/**
 * The node's ext4 disk: the template's rootfs with a static address on the
 * user network (10.0.2.15/24 via 10.0.2.2, systemd-networkd), root's ssh key,
 * and the apt timers off (they would compete for the CPU under TCG).
 */
export function systemdNodeDisk(path: string, o: NodeDiskOptions): string {
  const base = templateBase(loadTemplate("debian-systemd"));
  const work = mkdtempSync(join(dirname(path), ".node-"));
  const stage = join(work, "root");
  try {
    runChecked(["cp", "-a", base, stage]);
    const put = (p: string, data: Uint8Array | string, mode = 0o644) => {
      mkdirSync(dirname(join(stage, p)), { recursive: true });
      // Never through a link of the image: /sbin/init -> /lib/systemd/systemd is absolute.
      rmSync(join(stage, p), { force: true });
      writeFileSync(join(stage, p), data);
      chmodSync(join(stage, p), mode);
    };
    const link = (p: string, target: string) => {
      mkdirSync(dirname(join(stage, p)), { recursive: true });
      rmSync(join(stage, p), { force: true });
      symlinkSync(target, join(stage, p));
    };
    put("/etc/hostname", "node1\n");
    put(
      "/etc/systemd/network/10-user.network",
      "[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n",
    );
    const sd = "/lib/systemd/system";
    link(
      "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
      `${sd}/systemd-networkd.service`,
    );
    link(
      "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
      `${sd}/systemd-networkd.socket`,
    );
    link(
      "/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
      `${sd}/systemd-networkd-wait-online.service`,
    );
    for (const t of [
      "apt-daily-upgrade.timer",
      "apt-daily.timer",
      "dpkg-db-backup.timer",
      "e2scrub_all.timer",
      "fstrim.timer",
    ])
      rmSync(join(stage, "etc/systemd/system/timers.target.wants", t), { force: true });
    if (o.init === "zinit") {
      put("/sbin/zinit", readFileSync(vendorBinary("zinit")), 0o755);
      put("/sbin/init", "#!/bin/sh\nexec /sbin/zinit init\n", 0o755);
      for (const [p, text] of Object.entries(ZINIT_BASE)) put(p, text);
    }
    mkdirSync(join(stage, "root/.ssh"), { recursive: true, mode: 0o700 });
    put("/root/.ssh/authorized_keys", `${o.authorizedKey.trim()}\n`, 0o600);
    for (const [p, f] of Object.entries(o.files ?? {})) put(p, f.data, f.mode);
    return ext4FromDir(stage, path, o.sizeMB ?? 1536, "node");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** An ed25519 key pair for the test's ssh client; returns the private key file and the public line. */
export function sshKeyPair(
  dir: string,
  name = "id_ed25519",
): { keyFile: string; publicKey: string } {
  const keyFile = join(dir, name);
  runChecked([
    "ssh-keygen",
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "hero-init-test",
    "-f",
    keyFile,
  ]);
  return { keyFile, publicKey: readFileSync(`${keyFile}.pub`, "utf8") };
}

/** The result of one command over ssh. */
export interface SshResult {
  code: number | null;
  out: string;
  err: string;
}

/** How {@link ssh} logs in. */
export interface SshOptions {
  /** The account (default root). */
  user?: string;
  /** The client is killed after this long (default 2 minutes): a stuck login cannot hang a test. */
  timeoutMs?: number;
  /** ssh's ConnectTimeout in seconds (default 20). */
  connectTimeoutS?: number;
}

/**
 * Runs `command` on the guest through the host's ssh client (forwarded
 * port), with `keyFile` as the only identity (no agent, no password), bounded.
 */
export async function ssh(
  port: number,
  keyFile: string,
  command: string,
  o: SshOptions = {},
): Promise<SshResult> {
  const opts = [
    "IdentitiesOnly=yes",
    "IdentityAgent=none",
    "BatchMode=yes",
    "PreferredAuthentications=publickey",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "LogLevel=ERROR",
    `ConnectTimeout=${o.connectTimeoutS ?? 20}`,
  ];
  const p = Bun.spawn(
    [
      "ssh",
      "-i",
      keyFile,
      "-p",
      String(port),
      ...opts.flatMap((x) => ["-o", x]),
      `${o.user ?? "root"}@127.0.0.1`,
      command,
    ],
    {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: o.timeoutMs ?? 120_000,
      killSignal: "SIGKILL",
    },
  );
  const [out, err] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ]);
  const code = await p.exited;
  return { code: p.signalCode ? null : code, out, err };
}

/** Waits until ssh answers on the node (sshd up, the key accepted). */
export async function waitSsh(
  port: number,
  keyFile: string,
  timeoutMs: number,
  detail?: () => string,
): Promise<void> {
  await until(
    "ssh to the node",
    async () => (await ssh(port, keyFile, "true", { timeoutMs: 30_000 })).code === 0,
    timeoutMs,
    2000,
    detail,
  );
}
