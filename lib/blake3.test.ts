import { describe, expect, test } from "bun:test";
import { blake3 } from "./blake3.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Debian's b3sum (the reference Rust implementation) as the oracle. */
function b3sum(input: Uint8Array, len: number): string {
  const p = Bun.spawnSync(["b3sum", "--no-names", "--length", String(len)], { stdin: input });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return p.stdout.toString().trim();
}

describe("blake3", () => {
  test("the empty input (published value)", () => {
    expect(hex(blake3(new Uint8Array(0)))).toBe(
      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    );
  });

  test.skipIf(!Bun.which("b3sum"))(
    "matches b3sum across chunk and block boundaries and XOF lengths",
    () => {
      const sizes = [
        0, 1, 31, 32, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 8193,
        16385, 65537,
      ];
      for (const n of sizes) {
        const input = Uint8Array.from({ length: n }, (_, i) => i % 251);
        for (const len of [16, 32, 64, 65, 131])
          expect(`${n}/${len}:${hex(blake3(input, len))}`).toBe(`${n}/${len}:${b3sum(input, len)}`);
      }
    },
  );
});
