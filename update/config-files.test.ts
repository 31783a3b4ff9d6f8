import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { diffFiles, idOf } from "../lib/config-files.ts";
import { parseManifest } from "../lib/manifest.ts";
import { type Fixture, makeFixture } from "../test/helpers/update-fixture.ts";
import { runUpdate, type UpdateHooks } from "./engine.ts";

let f: Fixture;
let restarts: string[][];
let unhealthy: string[];
const hooks = (): UpdateHooks => ({
  restart: async (s) => {
    restarts.push(s);
  },
  health: async (s) => s.filter((n) => unhealthy.includes(n)),
  log: () => {},
});
const run = () => runUpdate(f.source, f.paths, hooks());
const read = (p: string) => readFileSync(join(f.root, p), "utf8");

beforeEach(async () => {
  f = await makeFixture();
  restarts = [];
  unhealthy = [];
  mkdirSync(join(f.root, "etc"), { recursive: true });
  writeFileSync(
    join(f.root, "etc/passwd"),
    "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
  );
  writeFileSync(join(f.root, "etc/group"), "root:x:0:\nweb:x:33:\n");
  mkdirSync(join(f.pub, "files"), { recursive: true });
});
afterEach(() => f.close());

/** Publishes [[vm.files]] entries (TOML tables). */
function files(version: number, entries: string[]) {
  writeFileSync(join(f.pub, "files/vm.toml"), entries.map((e) => `[[files]]\n${e}\n`).join(""));
  f.publish(version);
}

/** A file served by the bootstrap server, and its url/sha256/size lines. */
function served(name: string, data: string): string {
  writeFileSync(join(f.pub, name), data);
  const sha = createHash("sha256").update(data).digest("hex");
  return `url = "${f.server.url}${name}"\nsha256 = "${sha}"\nsize = ${data.length}`;
}

describe("config files through the update engine", () => {
  test("inline and downloaded files land with owner and mode; their services restart; a second run changes nothing", async () => {
    files(1, [
      'path = "/etc/web/web.conf"\ncontent = "port = 80\\n"\nowner = "web"\ngroup = "web"\nmode = 0o640\nservices = ["web"]',
      `path = "/etc/zinit/web.yaml"\n${served("web.yaml", "exec: /usr/bin/web\n")}\nservices = ["web"]`,
    ]);
    const r = await run();
    expect(r.outcome).toBe("updated");
    expect(r.files).toEqual({
      changed: ["/etc/web/web.conf", "/etc/zinit/web.yaml"],
      restarted: ["web"],
    });
    expect(read("etc/web/web.conf")).toBe("port = 80\n");
    const st = statSync(join(f.root, "etc/web/web.conf"));
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o640, 33, 33]);
    expect(read("etc/zinit/web.yaml")).toBe("exec: /usr/bin/web\n");
    expect(restarts).toEqual([["web"]]);

    const again = await run();
    expect(again.outcome).toBe("unchanged");
    expect(again.files?.changed).toEqual([]);
    expect(restarts).toHaveLength(1);
  });

  test("a service unhealthy after the change: the old file is back and the run is rolled back", async () => {
    files(1, ['path = "/etc/web.conf"\ncontent = "good\\n"\nservices = ["web"]']);
    expect((await run()).outcome).toBe("updated");
    unhealthy = ["web"];
    files(2, ['path = "/etc/web.conf"\ncontent = "broken\\n"\nservices = ["web"]']);
    const r = await run();
    expect(r.outcome).toBe("rolled-back");
    expect(r.error).toContain("unhealthy after the config change: web");
    expect(read("etc/web.conf")).toBe("good\n");
    expect(restarts).toEqual([["web"], ["web"], ["web"]]);
  });

  test("a download that does not match its sha256 writes nothing", async () => {
    const lines = served("x.conf", "expected\n").replace(
      /sha256 = "[0-9a-f]+"/,
      `sha256 = "${"0".repeat(64)}"`,
    );
    files(1, [`path = "/etc/x.conf"\n${lines}`, 'path = "/etc/y.conf"\ncontent = "y\\n"']);
    const r = await run();
    expect(r.outcome).toBe("failed");
    expect(r.error).toContain("config file /etc/x.conf");
    expect(existsSync(join(f.root, "etc/x.conf"))).toBe(false);
    expect(existsSync(join(f.root, "etc/y.conf"))).toBe(false);
  });

  test("an owner the machine does not have is named", async () => {
    files(1, ['path = "/etc/z.conf"\ncontent = "z"\nowner = "nosuch"']);
    const r = await run();
    expect(r.outcome).toBe("failed");
    expect(r.error).toContain('owner "nosuch" does not exist on this machine');
  });
});

describe("pure parts", () => {
  test("diffFiles: content, then owner/mode", () => {
    const m = parseManifest(
      '[[vm.files]]\npath = "/etc/a"\ncontent = "a"\nmode = 0o600\n',
      "m.toml",
    );
    const file = m.vm.files[0] as (typeof m.vm.files)[number];
    const sha = createHash("sha256").update("a").digest("hex");
    const ids = () => ({ uid: 0, gid: 0 });
    expect(diffFiles([file], () => null, ids)).toEqual([{ file, content: true }]);
    expect(diffFiles([file], () => ({ sha256: sha, mode: 0o100644, uid: 0, gid: 0 }), ids)).toEqual(
      [{ file, content: false }],
    );
    expect(diffFiles([file], () => ({ sha256: sha, mode: 0o100600, uid: 0, gid: 0 }), ids)).toEqual(
      [],
    );
  });
  test("idOf: names from the table, numbers as they are", () => {
    expect(idOf("web", "web:x:33:33::/:/bin/sh\n", "owner")).toBe(33);
    expect(idOf("1234", "", "owner")).toBe(1234);
  });
  test("content, or url with sha256 and size, not both", () => {
    expect(() =>
      parseManifest(
        `[[vm.files]]\npath = "/etc/a"\ncontent = "a"\nurl = "https://x/a"\n`,
        "m.toml",
      ),
    ).toThrow("set either content, or url with sha256 and size");
  });
});
