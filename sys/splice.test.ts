import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sockaddrVm, VMADDR_CID_ANY } from "./ffi.ts";
import { link, newSide, type SpliceSide, spliceHandlers } from "./splice.ts";

describe("sockaddr_vm (pure)", () => {
  test("family 40, port and cid little-endian, 16 bytes", () => {
    expect([...sockaddrVm(1, 9998)]).toEqual([
      40, 0, 0, 0, 0x0e, 0x27, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect([...sockaddrVm(VMADDR_CID_ANY, 1).subarray(8, 12)]).toEqual([255, 255, 255, 255]);
  });
});

describe("splice", () => {
  test("8 MB both ways through a spliced pair arrive intact, and a close reaches the other side", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-splice-"));
    // An echo server stands for the agent.
    const echo = Bun.listen({
      unix: join(dir, "echo.sock"),
      socket: {
        data(s, d) {
          s.write(d);
        },
      },
    });
    // The "listener" splices each connection to the echo server, as the vsock listener does.
    const front = Bun.listen<SpliceSide>({
      unix: join(dir, "front.sock"),
      data: newSide(),
      socket: {
        ...spliceHandlers,
        open(local) {
          local.data = newSide();
          void Bun.connect<SpliceSide>({
            unix: join(dir, "echo.sock"),
            socket: spliceHandlers,
            data: newSide(),
          }).then((up) => link(local, up));
        },
      },
    });
    const payload = randomBytes(8 << 20);
    const got: Buffer[] = [];
    let received = 0;
    const done = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<void>();
    let offset = 0;
    const client = await Bun.connect({
      unix: join(dir, "front.sock"),
      socket: {
        open(s) {
          offset += s.write(payload.subarray(offset));
        },
        drain(s) {
          if (offset < payload.length) offset += s.write(payload.subarray(offset));
        },
        data(_s, d) {
          got.push(Buffer.from(d));
          received += d.length;
          if (received >= payload.length) done.resolve();
        },
        close() {
          closed.resolve();
        },
      },
    });
    await done.promise;
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    expect(received).toBe(payload.length);
    expect(sha(Buffer.concat(got))).toBe(sha(payload));
    echo.stop(true); // the agent side goes away: the client sees its connection end
    await closed.promise;
    client.end();
    front.stop(true);
  });
});
