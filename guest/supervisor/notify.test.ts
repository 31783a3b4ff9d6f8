import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NOTIFY_MAX_BYTES, openNotifySocket, saysReady } from "./notify.ts";

describe("NOTIFY_SOCKET", () => {
  test("saysReady: READY=1 as one of the message's lines, nothing else", () => {
    expect(saysReady("READY=1")).toBe(true);
    expect(saysReady("STATUS=up\nREADY=1\n")).toBe(true);
    expect(saysReady("READY=0")).toBe(false);
    expect(saysReady("STATUS=READY=1")).toBe(false);
    expect(saysReady("")).toBe(false);
  });

  // systemd's own client, unchanged (it also waits on a barrier: the socket must be read promptly).
  // systemd-notify comes from Debian's systemd package (scripts/setup.sh); missing, this fails.
  test("a real datagram socket: systemd-notify --ready reaches it; closed, the file is gone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "notify-"));
    try {
      const got: string[] = [];
      const sock = openNotifySocket("svc", undefined, (t) => got.push(t), dir);
      expect(sock.path).toBe(join(dir, "svc.sock"));
      expect(statSync(sock.path).mode & 0o777).toBe(0o600);
      const long = "x".repeat(NOTIFY_MAX_BYTES * 2);
      const sender = Bun.spawn(["systemd-notify", `--status=${long}`], {
        env: { ...process.env, NOTIFY_SOCKET: sock.path },
        stderr: "pipe",
      });
      await sender.exited;
      const ready = Bun.spawn(["systemd-notify", "--ready"], {
        env: { ...process.env, NOTIFY_SOCKET: sock.path },
        stderr: "pipe",
      });
      expect(await ready.exited).toBe(0);
      for (let i = 0; i < 100 && !got.some(saysReady); i++) await Bun.sleep(50);
      expect(got.some(saysReady)).toBe(true);
      // The oversized datagram was cut to the buffer, not read in pieces.
      expect(got.every((t) => Buffer.byteLength(t) <= NOTIFY_MAX_BYTES)).toBe(true);
      expect(got.filter((t) => t.startsWith("STATUS=x"))).toHaveLength(1);
      sock.close();
      sock.close();
      expect(existsSync(sock.path)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
