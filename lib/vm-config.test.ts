import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "./vm-config.ts";

describe("vm.toml", () => {
  test("a full valid config parses", () => {
    const { config, errors } = parseVmConfig(
      `hostname = "web-1"\nmodules = ["virtio_net"]\n[network]\ndns = ["1.1.1.1"]\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.0.5/24"\ngateway = "10.0.0.1"\nmtu = 1400\n[ui]\nallow = ["10.0.0.0/24"]\n[env]\nFOO = "bar"\n`,
      "vm.toml",
    );
    expect(errors).toEqual([]);
    expect(config.network.interfaces[0]).toEqual({
      name: "eth0",
      address: "10.0.0.5/24",
      gateway: "10.0.0.1",
      mtu: 1400,
    });
    expect(config.env).toEqual({ FOO: "bar" });
  });

  test("an invalid section falls back to its defaults, with file, line and field", () => {
    const text = `hostname = "ok"\n\n[network]\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.0.5"\n`;
    const { config, errors } = parseVmConfig(text, "/etc/hero-init/vm.toml");
    expect(config.hostname).toBe("ok");
    expect(config.network.interfaces).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.where).toEqual({
      file: "/etc/hero-init/vm.toml",
      line: 6,
      field: "network.interfaces.0.address",
    });
  });

  test("unknown keys are errors, not silently ignored", () => {
    const { errors } = parseVmConfig(`hostnme = "typo"\n`, "vm.toml");
    expect(errors[0]?.toString()).toContain("hostnme");
  });

  test("a syntax error gives line and column and the default config", () => {
    const { config, errors } = parseVmConfig(`a = 1\nb = [1,\nc = x\n`, "vm.toml");
    expect(config.hostname).toBe("hero-vm");
    expect(errors[0]?.where).toMatchObject({ file: "vm.toml", line: 3, column: 1 });
  });

  test("an invalid host name is refused", () => {
    const { config, errors } = parseVmConfig(`hostname = "bad_name!"\n`, "vm.toml");
    expect(config.hostname).toBe("hero-vm");
    expect(errors[0]?.where.field).toBe("hostname");
  });

  test("dhcp = true is an interface; with a static address it is an error naming the interface", () => {
    const ok = parseVmConfig(`[[network.interfaces]]\nname = "eth0"\ndhcp = true\n`, "vm.toml");
    expect(ok.errors).toEqual([]);
    expect(ok.config.network.interfaces).toEqual([{ name: "eth0", dhcp: true }]);
    const bad = parseVmConfig(
      `[[network.interfaces]]\nname = "eth0"\ndhcp = true\naddress = "10.0.0.5/24"\n`,
      "vm.toml",
    );
    expect(bad.config.network.interfaces).toEqual([]);
    expect(bad.errors[0]?.message).toContain("dhcp = true takes the address");
    expect(bad.errors[0]?.where.field).toBe("network.interfaces.0");
  });
});

describe("[mycelium]", () => {
  test("defaults and peers", () => {
    const { config, errors } = parseVmConfig(
      `[mycelium]\npeers = ["tcp://192.0.2.10:9651", "quic://[2001:db8::10]:9651"]\n`,
      "vm.toml",
    );
    expect(errors).toEqual([]);
    expect(config.mycelium).toEqual({
      peers: ["tcp://192.0.2.10:9651", "quic://[2001:db8::10]:9651"],
      binary: "/usr/bin/mycelium",
      key_file: "/var/lib/mycelium/key.bin",
      tun_name: "mycelium",
      api_addr: "127.0.0.1:8989",
      extra_args: [],
    });
  });

  test("an invalid peer URI is a config error naming it", () => {
    const { config, errors } = parseVmConfig(
      `hostname = "h"\n[mycelium]\npeers = ["tcp://192.0.2.10:9651", "udp://x:1"]\n`,
      "vm.toml",
    );
    expect(config.mycelium).toBeUndefined();
    expect(config.hostname).toBe("h");
    expect(errors[0]?.toString()).toBe(
      'vm.toml:3: mycelium.peers.1: must be a peer URI like tcp://192.0.2.10:9651 or quic://[2001:db8::10]:9651 (got "udp://x:1"); using the default for [mycelium]',
    );
  });
});

describe("[ui] secrets and ssh keys", () => {
  test("a plain password is refused where a hash belongs; a real hash is accepted", async () => {
    const bad = parseVmConfig(`[ui]\npassword_hash = "hunter2"\n`, "vm.toml");
    expect(bad.errors[0]?.toString()).toContain("ui.password_hash: must be a password hash");
    const hash = await Bun.password.hash("pw", { algorithm: "argon2id" });
    const good = parseVmConfig(`[ui]\npassword_hash = "${hash}"\n`, "vm.toml");
    expect(good.errors).toEqual([]);
    expect(good.config.ui.terminal).toBe(false);
  });

  test("ssh_authorized_keys must be OpenSSH public key lines", () => {
    expect(
      parseVmConfig(`ssh_authorized_keys = ["ssh-ed25519 AAAAC3Nza op@host"]\n`, "vm.toml").errors,
    ).toEqual([]);
    expect(
      parseVmConfig(`ssh_authorized_keys = ["-----BEGIN OPENSSH PRIVATE KEY-----"]\n`, "vm.toml")
        .errors,
    ).toHaveLength(1);
  });
  test("paths with control characters are refused with their field (a newline could reach a command language)", () => {
    const { errors } = parseVmConfig(
      '[mycelium]\nkey_file = "/var/lib/mycelium/key\\nbin"\n',
      "vm.toml",
    );
    expect(errors[0]?.where.field).toBe("mycelium.key_file");
    expect(errors[0]?.toString()).toContain("control characters");
  });
});
