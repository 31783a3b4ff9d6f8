import { describe, expect, test } from "bun:test";
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto";
import ipaddr from "ipaddr.js";
import {
  addressOfPublicKey,
  generateKey,
  ipFromSubnet,
  isPeerUri,
  parsePeerUri,
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

describe("peer URIs, as mycelium 0.7.10 parses them (held to the daemon in test/integration/mycelium-real.test.ts)", () => {
  test("IP socket addresses with tcp, quic or tls (any case), and vsock CID:PORT", () => {
    expect(parsePeerUri("tcp://192.0.2.10:9651")).toEqual({
      proto: "tcp",
      ip: "192.0.2.10",
      scope: null,
      port: 9651,
    });
    expect(parsePeerUri("QUIC://[2001:DB8:0::10]:9651")).toEqual({
      proto: "quic",
      ip: "2001:db8::10",
      scope: null,
      port: 9651,
    });
    expect(parsePeerUri("tls://[fe80::1%2]:1")).toMatchObject({ ip: "fe80::1", scope: 2 });
    expect(parsePeerUri("tcp://[::ffff:127.0.0.1]:48974")).toMatchObject({ port: 48974 });
    expect(parsePeerUri("vsock://2:9651")).toEqual({ proto: "vsock", cid: 2, port: 9651 });
  });

  test("refused: names, unknown protocols, missing or bad ports, unbracketed IPv6, zone names", () => {
    for (const bad of [
      "tcp://host.example:9651",
      "udp://192.0.2.1:9651",
      "192.0.2.1:9651",
      "tcp://192.0.2.1",
      "tcp://192.0.2.1:65536",
      "tcp://192.0.2.1:0",
      "tcp://192.0.2.1:09651",
      "tcp://01.2.3.4:9651",
      "tcp://256.1.1.1:9651",
      "tcp://::1:9651",
      "tcp://[::1]",
      "tcp://[fe80::1%eth0]:9651",
      "tcp://[1.2.3.4]:9651",
      " tcp://192.0.2.1:9651",
      "tcp://192.0.2.1:9651/",
      "vsock://x:1",
      "vsock://3",
      "",
    ]) {
      expect([bad, isPeerUri(bad)]).toEqual([bad, false]);
    }
  });
});
