import { describe, expect, test } from "bun:test";
import { until } from "../test/helpers/poll.ts";
import { killUidProcesses, statusUids } from "./processes.ts";

describe("statusUids", () => {
  test("real and effective uid; a zombie or a text without Uid is null", () => {
    expect(
      statusUids("Name:\tsleep\nState:\tS (sleeping)\nUid:\t1001\t1002\t1002\t1002\n"),
    ).toEqual([1001, 1002]);
    expect(statusUids("Name:\tsh\nState:\tZ (zombie)\nUid:\t1001\t1001\t1001\t1001\n")).toBeNull();
    expect(statusUids("Name:\tx\n")).toBeNull();
  });
});

describe("killUidProcesses (needs root: setpriv changes the uid)", () => {
  test("every process of the uid ends; a process of another uid is left alone", async () => {
    const as = (uid: number) =>
      Bun.spawn(["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "1000"]);
    const a = [as(54321), as(54321)];
    const other = as(54322);
    try {
      // Both have become uid 54321 (setpriv execs sleep after setuid).
      const asUid = async (pid: number) => {
        const st = await Bun.file(`/proc/${pid}/status`)
          .text()
          .catch(() => "");
        return statusUids(st)?.[0] === 54321 && st.includes("Name:\tsleep");
      };
      await until(
        "both sleeps running as uid 54321",
        async () => (await Promise.all(a.map((p) => asUid(p.pid)))).every(Boolean),
        10_000,
        10,
      );
      expect(killUidProcesses(54321)).toBe(2);
      expect(await Promise.all(a.map((p) => p.exited))).toEqual([137, 137]);
      expect(other.exitCode).toBeNull();
      expect(killUidProcesses(54321)).toBe(0);
    } finally {
      for (const p of [...a, other]) p.kill("SIGKILL");
    }
  });

  test("root and system uids are refused", () => {
    expect(() => killUidProcesses(0)).toThrow("refusing to end the processes of uid 0");
    expect(() => killUidProcesses(999)).toThrow("not a managed user");
  });
});
