import { describe, expect, test } from "bun:test";
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import ipaddr from "ipaddr.js";
import {
  addressOfPublicKey,
  generateKey,
  ipFromSubnet,
  publicKeyOf,
  subnetOf,
} from "./mycelium.ts";
import { isMyceliumAddress } from "./net-acl.ts";

const wrap = (raw: Uint8Array) =>
  createPublicKey({
    key: { kty: "OKP", crv: "X25519", x: Buffer.from(raw).toString("base64url") },
    format: "jwk",
  });

describe("mycelium identity", () => {
  test("the public key is x25519's: key agreement with another key gives the same secret both ways", () => {
    const a = generateKey();
    const other = generateKeyPairSync("x25519");
    const otherPub = new Uint8Array(
      Buffer.from((other.publicKey.export({ format: "jwk" }) as { x: string }).x, "base64url"),
    );
    const mine = createPrivateKey({
      key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), a]),
      format: "der",
      type: "pkcs8",
    });
    const s1 = diffieHellman({ privateKey: mine, publicKey: wrap(otherPub) });
    const s2 = diffieHellman({ privateKey: other.privateKey, publicKey: wrap(publicKeyOf(a)) });
    expect(Buffer.compare(s1, s2)).toBe(0);
  });

  test.skipIf(!Bun.which("b3sum"))(
    "address = b3sum --length 16 of the public key with mycelium's first-byte rule",
    () => {
      for (let i = 0; i < 20; i++) {
        const pub = publicKeyOf(generateKey());
        const h = Buffer.from(
          Bun.spawnSync(["b3sum", "--no-names", "--length", "16"], { stdin: pub })
            .stdout.toString()
            .trim(),
          "hex",
        );
        const ones = [...(h[0] as number).toString(2)].filter((c) => c === "1").length;
        h[0] = 0x04 | (ones % 2);
        const expected = ipaddr.fromByteArray([...h]).toString();
        expect(addressOfPublicKey(pub)).toBe(expected);
        expect(isMyceliumAddress(expected)).toBe(true);
      }
    },
  );

  test("subnet is the address /64; older APIs give only the subnet", () => {
    expect(subnetOf("54f:b680:ba6e:7ced:1:2:3:4")).toBe("54f:b680:ba6e:7ced::/64");
    expect(ipFromSubnet("54f:b680:ba6e:7ced::/64")).toBe("54f:b680:ba6e:7ced::");
  });

  test("a key file must be 32 bytes", () => {
    expect(() => publicKeyOf(new Uint8Array(31))).toThrow("32 bytes");
  });
});

describe("against the real mycelium binary (set MYCELIUM_BIN to run)", () => {
  test.skipIf(!process.env.MYCELIUM_BIN)(
    "`mycelium inspect --json -k KEY` gives our public key and address",
    () => {
      const dir = mkdtempSync(`${tmpdir()}/myc-real-`);
      try {
        for (let i = 0; i < 5; i++) {
          const key = generateKey();
          writeFileSync(`${dir}/key.bin`, key);
          const p = Bun.spawnSync([
            process.env.MYCELIUM_BIN as string,
            "inspect",
            "--json",
            "-k",
            `${dir}/key.bin`,
          ]);
          const got = JSON.parse(p.stdout.toString()) as { publicKey: string; address: string };
          expect(got.publicKey).toBe(Buffer.from(publicKeyOf(key)).toString("hex"));
          expect(ipaddr.parse(got.address).toString()).toBe(addressOfPublicKey(publicKeyOf(key)));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
