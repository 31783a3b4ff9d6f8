/**
 * Attack: the debug terminal is a root shell, so it is scoped tighter than
 * the rest of the UI (seed 001: "root ttyd … needs passwd and mycelium
 * only", "which mycelium nodes can connect as debugger"). Every mycelium
 * address may reach the UI, but only loopback and the `[ui] terminal_allow`
 * addresses or subnets may open the terminal, and only with the admin
 * password. A mycelium client that is not listed, holding a valid admin
 * session, is refused on the page and on the WebSocket, and no shell is
 * started for it.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createApp, type UiEnv } from "../../guest/ui/app.ts";
import { createTerminals } from "../../guest/ui/terminal.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { fakeSource } from "../helpers/fake-ui-source.ts";

const DEBUGGER = "4ab:cd::1";
const STRANGER = "5ff:1234::7";
let hash = "";
beforeAll(async () => {
  hash = await Bun.password.hash("admin-pw", {
    algorithm: "argon2id",
    memoryCost: 1024,
    timeCost: 1,
  });
});

/** The UI with a terminal; `allow`: [ui] allow (who may reach the UI at all besides loopback and mycelium). */
function setup(terminalAllow: string[], allow: string[] = []) {
  const upgrades: unknown[] = [];
  const app = createApp({
    hostname: () => "vm1",
    uptime: () => 1,
    allow,
    source: fakeSource().source,
    passwordHash: hash,
    terminals: createTerminals({ shell: ["true"] }),
    terminalAllow,
  });
  const env = (address: string): UiEnv => ({
    requestIP: () => ({ address }),
    upgrade: (_req, o) => {
      upgrades.push(o.data);
      return true;
    },
  });
  const session = async (ip: string) => {
    const r = await app.request(
      "/api/v1/login",
      {
        method: "POST",
        body: JSON.stringify({ password: "admin-pw" }),
        headers: { "content-type": "application/json" },
      },
      env(ip),
    );
    expect(r.status).toBe(200);
    const { csrf } = (await r.json()) as { csrf: string };
    return { cookie: (r.headers.get("set-cookie") ?? "").split(";")[0] as string, csrf };
  };
  const open = async (ip: string) => {
    const s = await session(ip);
    const page = await app.request("/terminal", { headers: { cookie: s.cookie } }, env(ip));
    const ws = await app.request(
      `http://vm1/terminal/ws?csrf=${s.csrf}`,
      { headers: { cookie: s.cookie, origin: "http://vm1" } },
      env(ip),
    );
    return { page: page.status, ws: ws.status, body: await ws.text() };
  };
  return { open, upgrades };
}

describe("debug terminal scope ([ui] terminal_allow)", () => {
  test("a mycelium admin that is not listed is refused on the page and the socket; no shell starts", async () => {
    const { open, upgrades } = setup([`${DEBUGGER}/128`]);
    const r = await open(STRANGER);
    expect([r.page, r.ws]).toEqual([403, 403]);
    expect(r.body).toContain(`client ${STRANGER} may not open the debug terminal`);
    expect(upgrades).toEqual([]);
    // The listed debugger and loopback get through (with the admin session).
    expect(await open(DEBUGGER)).toMatchObject({ page: 200, ws: 200 });
    expect(await open("127.0.0.1")).toMatchObject({ page: 200, ws: 200 });
    expect(upgrades).toHaveLength(2);
  });

  test("default: no mycelium address at all, only loopback", async () => {
    const { open, upgrades } = setup(
      parseVmConfig("[ui]\nterminal = true\n", "vm.toml").config.ui.terminal_allow,
    );
    expect(await open(DEBUGGER)).toMatchObject({ page: 403, ws: 403 });
    expect(await open("::1")).toMatchObject({ page: 200, ws: 200 });
    expect(upgrades).toHaveLength(1);
  });

  test("a subnet admits its addresses only", async () => {
    const { open } = setup(["4ab:cd::/64"]);
    expect(await open("4ab:cd::99")).toMatchObject({ page: 200 });
    expect(await open("4ab:ce::1")).toMatchObject({ page: 403 });
  });

  test("vm.toml: a bare address is that one host, IPv4 or IPv6; a prefix past the family's width is refused", async () => {
    const allow = (list: string) =>
      parseVmConfig(`[ui]\nterminal = true\nterminal_allow = ${list}\n`, "vm.toml");
    const ok = allow('["10.0.2.2", "4ab:cd::1", "10.1.0.0/16"]');
    expect(ok.errors).toEqual([]);
    // The host under slirp (10.0.2.0/24) may reach the UI; only the named ones get the terminal.
    const { open } = setup(ok.config.ui.terminal_allow, ["10.0.0.0/8"]);
    expect(await open("10.0.2.2")).toMatchObject({ page: 200 });
    expect(await open("10.0.2.3")).toMatchObject({ page: 403 });
    expect(await open("10.1.9.9")).toMatchObject({ page: 200 });
    for (const bad of ['"10.0.0.0/33"', '"4ab::/129"', '"10.0.2.2/"', '"10.0.2.2/8/1"'])
      expect(String(allow(`[${bad}]`).errors[0])).toContain("ui.terminal_allow.0");
  });

  test("vm.toml: a bad terminal_allow entry is named, and [ui] falls back to no terminal", () => {
    const { config, errors } = parseVmConfig(
      '[ui]\nterminal = true\nterminal_allow = ["4ab:cd::1\\n"]\n',
      "vm.toml",
    );
    expect(String(errors[0])).toContain("ui.terminal_allow.0");
    expect(config.ui.terminal).toBe(false);
  });
});
