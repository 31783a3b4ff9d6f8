import { describe, expect, test } from "bun:test";
import { optValue, qemuArgs } from "./qemu-args.ts";

describe("qemuArgs", () => {
  test("a comma in a disk, console or QMP path is doubled: it cannot add QEMU options", () => {
    const args = qemuArgs({
      vmlinuz: "/k",
      initrd: "/i",
      disks: [{ path: "/tmp/a,format=qcow2,file.driver=ssh" }],
      serial: { file: "/tmp/con,logappend=on" },
      qmpSocket: "/tmp/q,wait=on",
    });
    expect(args).toContain("file=/tmp/a,,format=qcow2,,file.driver=ssh,if=none,id=d0,format=raw");
    expect(args).toContain("file,id=con,path=/tmp/con,,logappend=on");
    expect(args).toContain("unix:/tmp/q,,wait=on,server=on,wait=off");
    expect(optValue("plain/path")).toBe("plain/path");
  });

  test("a disk's serial goes on its virtio-blk device (volumes find it in /sys/block/*/serial)", () => {
    const args = qemuArgs({
      vmlinuz: "/k",
      initrd: "/i",
      disks: [{ path: "/r" }, { path: "/v", serial: "data1" }],
      serial: "stdio",
    });
    expect(args).toContain("virtio-blk-pci,drive=d0");
    expect(args).toContain("virtio-blk-pci,drive=d1,serial=data1");
  });

  test("a TCG guest gets every emulated CPU feature but ERMS; a KVM guest the host's CPU", () => {
    const cpu = (accel?: "tcg" | "kvm") =>
      qemuArgs({ vmlinuz: "/k", initrd: "/i", serial: "stdio", accel }).join(" ");
    expect(cpu()).toContain("-accel tcg -cpu max,-erms ");
    expect(cpu("tcg")).toContain("-accel tcg -cpu max,-erms ");
    expect(cpu("kvm")).toContain("-accel kvm -cpu host ");
  });
});
