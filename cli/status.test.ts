import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { createResponder, type UiApp } from "../guest/ui/http.ts";
import { overviewPage } from "../guest/ui/pages.ts";
import { apiRoutes } from "../guest/ui/routes/api.ts";
import type { UiSource } from "../guest/ui/source.ts";
import { parseVmConfig } from "../lib/vm-config.ts";
import { fakeSource } from "../test/helpers/fake-ui-source.ts";
import { parseNodeUpdateConfig } from "../update/install.ts";
import { machineStatus, statusText } from "./status.ts";

const KEY = `RW${"A".repeat(54)}`;
const IDENTITY = `[identity]
farmer_id = 42
farming_pool_id = 7
registrars = ["https://registrar.example.org/"]
description = "rack 3 <b>Ghent</b>"
`;

describe("[identity] on a node: hero-init status", () => {
  test("shows identity, manifest, environment, trusted version and managed users", () => {
    const root = mkdtempSync(join(tmpdir(), "hero-status-"));
    mkdirSync(join(root, "etc/hero-init"), { recursive: true });
    writeFileSync(
      join(root, "etc/hero-init/update.toml"),
      `manifest = "https://boot.example.org/bootstrapper.toml"\nkey = "${KEY}"\nrole = "node"\nenv = "canary"\n${IDENTITY}`,
    );
    const state = join(root, "var/lib/hero-init/update");
    mkdirSync(state, { recursive: true });
    writeFileSync(
      join(state, "state.json"),
      JSON.stringify({ schema: 1, version: 9, keysVersion: 0 }),
    );
    writeFileSync(
      join(state, "access.json"),
      JSON.stringify({ env: "canary", users: { ops: { uid: 1001, home: "/home/ops" } } }),
    );
    const s = machineStatus(root);
    expect(s.identity).toEqual({
      farmer_id: 42,
      farming_pool_id: 7,
      registrars: ["https://registrar.example.org/"],
      description: "rack 3 <b>Ghent</b>",
    });
    expect(statusText(s)).toBe(
      [
        "farmer id: 42",
        "farming pool id: 7",
        "registrars: https://registrar.example.org/",
        "description: rack 3 <b>Ghent</b>",
        `role: node (${root}/etc/hero-init/update.toml)`,
        "manifest: https://boot.example.org/bootstrapper.toml (environment canary)",
        "trusted manifest version: 9",
        "managed users: ops",
        "",
      ].join("\n"),
    );
  });

  test("a bad identity is named with its field", () => {
    expect(() =>
      parseNodeUpdateConfig(
        `manifest = "https://b/x.toml"\nkey = "${KEY}"\nrole = "node"\n[identity]\nfarmer_id = -1\n`,
        "update.toml",
      ),
    ).toThrow();
    const { errors } = parseVmConfig('[identity]\ndescription = "two\\nlines"\n', "vm.toml");
    expect(String(errors[0])).toContain("identity.description");
  });
});

describe("[identity] in the UI", () => {
  const identity = parseVmConfig(IDENTITY, "vm.toml").config.identity;
  const f = fakeSource();
  const source = { ...f.source, overview: () => ({ ...f.source.overview(), identity }) };

  /** The API routes as a read-only viewer from loopback sees them. */
  const api = (src: UiSource) => {
    const a = new Hono<UiApp>();
    a.use(async (c, next) => {
      c.set("ip", "127.0.0.1");
      c.set("session", null);
      c.set("role", "readonly");
      await next();
    });
    return a.route("/", apiRoutes(src, createResponder({ terminal: false })));
  };

  test("GET /api/v1/identity answers it (null when not configured)", async () => {
    expect(await (await api(source).request("/api/v1/identity")).json()).toMatchObject({
      farmer_id: 42,
      farming_pool_id: 7,
    });
    expect(await (await api(f.source).request("/api/v1/identity")).json()).toBeNull();
  });

  test("the overview page shows it, escaped", () => {
    const page = String(
      overviewPage({ role: "readonly", csrf: null } as never, source.overview(), [], []),
    );
    expect(page).toContain("<th>Farmer id</th><td>42</td>");
    expect(page).toContain("rack 3 &lt;b&gt;Ghent&lt;/b&gt;");
  });
});
