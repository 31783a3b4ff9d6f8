/**
 * Test fixture of the update engine (tests and benchmarks only): a
 * publisher directory served by `hero-init serve`, a signing key, and a
 * machine root with the engine's paths. `publish()` builds and signs a
 * manifest the way an operator does.
 */
import { createHash } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPublicKey, generateKey, type SecretKey } from "../../lib/minisign.ts";
import type { UpdatePaths, UpdateSource } from "../../update/engine.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";

export interface Fixture {
  dir: string;
  pub: string;
  root: string;
  key: SecretKey;
  server: BootstrapServer;
  /** Requests the server saw ("METHOD /path status"). */
  access: string[];
  paths: UpdatePaths;
  source: UpdateSource;
  /** Writes pub/<role>/<name>/<version>/<name> with `content` (+ meta.toml services). */
  addBinary(
    name: string,
    version: string,
    content: string,
    services?: string[],
    role?: "vm" | "node",
  ): void;
  /** Builds and signs pub/bootstrapper.toml; returns its text. */
  publish(version: number, o?: { expires?: Date; key?: SecretKey }): string;
  close(): Promise<void>;
}

export function machineKeyLine(k: SecretKey): string {
  return formatPublicKey(k).split("\n")[1] as string;
}

export async function makeFixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "hero-update-"));
  const pub = join(dir, "pub");
  const root = join(dir, "root");
  mkdirSync(pub, { recursive: true });
  mkdirSync(join(root, "etc/hero-init"), { recursive: true });
  const key = generateKey();
  writeFileSync(join(root, "etc/hero-init/update.pub"), `${machineKeyLine(key)}\n`);
  const access: string[] = [];
  const server = startServer({
    dir: pub,
    hostname: "127.0.0.1",
    port: 0,
    log: (l) => access.push(l),
  });
  const f: Fixture = {
    dir,
    pub,
    root,
    key,
    server,
    access,
    paths: {
      pkgs: join(root, "usr/lib/hero/pkgs"),
      root,
      stateDir: join(root, "var/lib/hero-init/update"),
      keysFile: join(root, "etc/hero-init/update.pub"),
    },
    source: {
      manifestUrl: `${server.url}bootstrapper.toml`,
      role: "vm",
      machineId: "test-machine",
    },
    addBinary(name, version, content, services, role = "vm") {
      const d = join(pub, role, name, version);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, name), content);
      if (services)
        writeFileSync(
          join(pub, role, name, "meta.toml"),
          `services = [${services.map((s) => JSON.stringify(s)).join(", ")}]\n`,
        );
    },
    publish(version, o = {}) {
      const text = buildManifest(pub, {
        baseUrl: server.url,
        version,
        expires: o.expires ?? new Date(Date.now() + 86400_000),
      });
      const data = new TextEncoder().encode(text);
      publishSigned(join(pub, "bootstrapper.toml"), data, o.key ?? key, "file:bootstrapper.toml");
      return text;
    },
    close: () => server.stop(),
  };
  return f;
}

/** Every file (sha256), link (target) and directory under `dir`, except `skip`. */
export function snapshot(dir: string, skip: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (skip.some((s) => p.startsWith(s))) continue;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[p] = `-> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[p] = "dir";
        walk(p);
      } else
        out[p] =
          `${(st.mode & 0o7777).toString(8)} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    }
  };
  walk(dir);
  return out;
}
