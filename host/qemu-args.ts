/**
 * QEMU command lines for hero-init VMs (pure), shared by `hero-init vm run`
 * and the test harness: TCG when KVM is unusable, virtio-net without its
 * option ROM (it adds BIOS time), user networking with host port forwards,
 * virtio-blk disks, -no-reboot so a guest reboot ends QEMU.
 */

/** What to boot. */
/**
 * Pure: a value inside a QEMU option string. QEMU splits options at commas
 * and reads ",," as one literal comma: a path with a comma would otherwise
 * add options of its own (file=/tmp/a,format=qcow2,...).
 */
export function optValue(s: string): string {
  return s.replaceAll(",", ",,");
}

export interface QemuSpec {
  vmlinuz: string;
  initrd: string;
  append?: string;
  memMB?: number;
  cpus?: number;
  /** host port → guest port */
  forwards?: Record<number, number>;
  /** virtio-blk disks; `serial` is what the guest sees in /sys/block/<dev>/serial. */
  disks?: { path: string; readonly?: boolean; serial?: string }[];
  accel?: "tcg" | "kvm";
  noReboot?: boolean;
  /** How the serial console is wired: a file, or "stdio". */
  serial: { file: string } | "stdio";
  qmpSocket?: string;
}

/**
 * The CPU of a TCG guest: every feature TCG emulates except ERMS. With ERMS
 * the guest kernel copies and clears memory with `rep movsb`/`rep stosb`,
 * which TCG runs one byte per iteration; without it, `rep movsq`/`rep stosq`
 * (8 bytes). Unpacking a 224 MB initramfs took 1.45-1.48 s with it and
 * 0.93-0.94 s without (docs/benchmarks.md, session 12). KVM uses the host's
 * CPU as it is.
 */
export const TCG_CPU = "max,-erms";

/** The kernel arguments every hero-init VM gets before the caller's. */
export const BASE_APPEND = "console=ttyS0 panic=-1 loglevel=4";

/** Pure: the argv of qemu-system-x86_64. */
export function qemuArgs(s: QemuSpec): string[] {
  const fwd = Object.entries(s.forwards ?? {})
    .map(([h, g]) => `,hostfwd=tcp:127.0.0.1:${h}-:${g}`)
    .join("");
  const args = [
    "qemu-system-x86_64",
    "-accel",
    s.accel ?? "tcg",
    "-cpu",
    s.accel === "kvm" ? "host" : TCG_CPU,
    "-machine",
    "q35",
    "-m",
    String(s.memMB ?? 1024),
    "-smp",
    String(s.cpus ?? 1),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-kernel",
    s.vmlinuz,
    "-initrd",
    s.initrd,
    "-append",
    `${BASE_APPEND} ${s.append ?? ""}`.trim(),
    "-netdev",
    `user,id=n0${fwd}`,
    "-device",
    "virtio-net-pci,netdev=n0,romfile=",
  ];
  if (s.serial === "stdio") args.push("-serial", "stdio");
  else
    args.push("-chardev", `file,id=con,path=${optValue(s.serial.file)}`, "-serial", "chardev:con");
  if (s.qmpSocket) args.push("-qmp", `unix:${optValue(s.qmpSocket)},server=on,wait=off`);
  if (s.noReboot !== false) args.push("-no-reboot");
  (s.disks ?? []).forEach((d, i) => {
    args.push(
      "-drive",
      `file=${optValue(d.path)},if=none,id=d${i},format=raw${d.readonly ? ",readonly=on" : ""}`,
      "-device",
      `virtio-blk-pci,drive=d${i}${d.serial ? `,serial=${optValue(d.serial)}` : ""}`,
    );
  });
  return args;
}
