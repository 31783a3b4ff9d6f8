import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readTar, type TarEntry, writeTar } from "../../lib/tar.ts";
import type { PlanEntry } from "../plan.ts";
import {
  addOwnLayer,
  applyLayer,
  dropOwnLayer,
  existingOf,
  LAYER_ANNOTATION,
  layerCompression,
  ociFormat,
  planTarEntries,
} from "./oci.ts";

const enc = new TextEncoder();
const file = (path: string, text: string): TarEntry => ({
  path,
  type: "file",
  mode: 0o644,
  data: enc.encode(text),
});
const dir = (path: string): TarEntry => ({ path, type: "dir", mode: 0o755 });

describe("applyLayer (pure)", () => {
  test("paths normalised to /a/b; a later layer replaces an entry", () => {
    const v = new Map<string, TarEntry>();
    applyLayer(v, [dir("./etc/"), file("etc/a", "1"), file("/etc/b", "x")]);
    applyLayer(v, [file("etc/a", "2")]);
    expect([...v.keys()]).toEqual(["/etc", "/etc/a", "/etc/b"]);
    expect(new TextDecoder().decode(v.get("/etc/a")?.data)).toBe("2");
  });

  test("a .wh. whiteout removes the entry and what is under it", () => {
    const v = new Map<string, TarEntry>();
    applyLayer(v, [dir("opt"), dir("opt/x"), file("opt/x/f", ""), file("opt/xy", "")]);
    applyLayer(v, [file("opt/.wh.x", "")]);
    expect([...v.keys()]).toEqual(["/opt", "/opt/xy"]);
  });

  test("names at the top keep their leading dot: .profile, and a whiteout with or without ./", () => {
    const v = new Map<string, TarEntry>();
    applyLayer(v, [dir("./"), file(".profile", ""), dir("sbin"), dir("./srv"), file("opt", "")]);
    expect([...v.keys()]).toEqual(["/", "/.profile", "/sbin", "/srv", "/opt"]);
    applyLayer(v, [file(".wh.sbin", ""), file("./.wh.srv", ""), file("/.wh.opt", "")]);
    expect([...v.keys()]).toEqual(["/", "/.profile"]);
  });

  test("an opaque-directory marker empties the directory, not its siblings", () => {
    const v = new Map<string, TarEntry>();
    applyLayer(v, [dir("a"), file("a/1", ""), file("a/2", ""), file("ab", ""), file("top", "")]);
    applyLayer(v, [file("a/.wh..wh..opq", ""), file("a/3", "")]);
    expect([...v.keys()].sort()).toEqual(["/a", "/a/3", "/ab", "/top"]);
    applyLayer(v, [file(".wh..wh..opq", "")]);
    expect([...v.keys()]).toEqual([]);
  });
});

describe("layerCompression, existingOf, planTarEntries (pure)", () => {
  test("media type suffix → compression", () => {
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar")).toBeNull();
  });

  test("a view entry as the injector sees it: mode bits only, owner 0 by default", async () => {
    const f = existingOf({
      path: "/f",
      type: "file",
      mode: 0o104755,
      uid: 5,
      data: enc.encode("d"),
    });
    expect(f).toMatchObject({ type: "file", mode: 0o4755, uid: 5, gid: 0 });
    if (f.type !== "file") throw new Error("not a file");
    expect(new TextDecoder().decode(await f.data())).toBe("d");
    const empty = existingOf({ path: "/e", type: "file", mode: 0o644 });
    if (empty.type !== "file") throw new Error("not a file");
    expect((await empty.data()).length).toBe(0);
    expect(existingOf({ path: "/d", type: "dir", mode: 0o40700, gid: 3 })).toEqual({
      type: "dir",
      mode: 0o700,
      uid: 0,
      gid: 3,
    });
    expect(existingOf({ path: "/l", type: "symlink", mode: 0o777, target: "x" })).toEqual({
      type: "symlink",
      target: "x",
    });
  });

  test("plan entries → tar entries, relative paths, all at mtime, links 0777", () => {
    const data = enc.encode("bin");
    const plan: PlanEntry[] = [
      { kind: "dir", path: "/etc/hero", mode: 0o755, uid: 0, gid: 0, own: true },
      { kind: "file", path: "/sbin/x", mode: 0o755, uid: 1, gid: 2, data, sha256: "" },
      { kind: "symlink", path: "/sbin/init", target: "x", uid: 0, gid: 0 },
    ];
    expect(planTarEntries(plan, 42)).toEqual([
      { path: "etc/hero", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 42 },
      { path: "sbin/x", type: "file", mode: 0o755, uid: 1, gid: 2, mtime: 42, data },
      { path: "sbin/init", type: "symlink", mode: 0o777, uid: 0, gid: 0, mtime: 42, target: "x" },
    ]);
  });
});

describe("dropOwnLayer and addOwnLayer (pure)", () => {
  type Manifest = Parameters<typeof dropOwnLayer>[0];
  type Config = Parameters<typeof dropOwnLayer>[1];
  const base = (): { manifest: Manifest; config: Config } => ({
    manifest: {
      schemaVersion: 2,
      config: { mediaType: "c", digest: "sha256:c", size: 1 },
      layers: [{ mediaType: "l", digest: "sha256:base", size: 1 }],
    },
    config: {
      rootfs: { type: "layers", diff_ids: ["sha256:d-base"] },
      history: [{ created_by: "base" }],
    },
  });

  test("the top layer not ours: nothing dropped", () => {
    const { manifest, config } = base();
    expect(dropOwnLayer(manifest, config)).toBeNull();
    expect(manifest.layers.length).toBe(1);
    expect(config.rootfs.diff_ids).toEqual(["sha256:d-base"]);
  });

  test("added, then dropped: the manifest and config are as they were", () => {
    const { manifest, config } = base();
    addOwnLayer(manifest, config, { digest: "sha256:ours", size: 9, diffId: "sha256:d", mtime: 0 });
    expect(manifest.layers.at(-1)).toEqual({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: "sha256:ours",
      size: 9,
      annotations: { [LAYER_ANNOTATION]: "true" },
    });
    expect(config.rootfs.diff_ids).toEqual(["sha256:d-base", "sha256:d"]);
    expect(config.history?.at(-1)).toMatchObject({
      created: "1970-01-01T00:00:00.000Z",
      created_by: "hero-init inject",
    });
    expect(dropOwnLayer(manifest, config)).toBe("sha256:ours");
    expect({ manifest, config }).toEqual(base());
  });
});

describe("ociFormat on a layout written by hand", () => {
  const root = mkdtempSync(join(tmpdir(), "hero-oci-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const digest = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

  /** A layout with one image (one gzip'd layer holding /etc/os-release), tagged `latest`. */
  const makeLayout = (name: string): string => {
    const layout = join(root, name);
    mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
    const put = (b: Uint8Array) => {
      const d = digest(b);
      writeFileSync(join(layout, "blobs", ...d.split(":")), b);
      return { digest: d, size: b.length };
    };
    const tar = writeTar([dir("etc"), file("etc/os-release", "ID=test\n")]);
    const layer = put(new Uint8Array(gzipSync(tar)));
    const config = put(
      enc.encode(JSON.stringify({ rootfs: { type: "layers", diff_ids: [digest(tar)] } })),
    );
    const manifest = put(
      enc.encode(
        JSON.stringify({
          schemaVersion: 2,
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
        }),
      ),
    );
    writeFileSync(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const desc = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      annotations: { "org.opencontainers.image.ref.name": "latest" },
    };
    writeFileSync(
      join(layout, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [desc] }),
    );
    return layout;
  };
  const plan: PlanEntry[] = [
    { kind: "dir", path: "/etc/hero", mode: 0o755, uid: 0, gid: 0, own: true },
    {
      kind: "file",
      path: "/etc/hero/x",
      mode: 0o600,
      uid: 0,
      gid: 0,
      data: enc.encode("x"),
      sha256: "",
    },
  ];
  const blobs = (layout: string) => readdirSync(join(layout, "blobs", "sha256")).sort();
  const topLayer = (layout: string) => {
    const idx = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const m = JSON.parse(
      readFileSync(join(layout, "blobs", ...idx.manifests[0].digest.split(":")), "utf8"),
    );
    return { count: m.layers.length as number, top: m.layers.at(-1) };
  };

  test("exists, looks up through the layers, adds one layer, replaces it on a re-run", async () => {
    const layout = makeLayout("one");
    const f = ociFormat(layout, "latest");
    expect(await f.exists()).toBe(true);
    expect(await f.lookup("/etc/os-release")).toMatchObject({ type: "file", mode: 0o644 });
    expect(await f.lookup("/etc/hero/x")).toBeNull();
    const r = await f.apply(plan, { mtime: 0 });
    expect(r.changed).toBe(2);
    const first = topLayer(layout);
    expect(first.count).toBe(2);
    expect(first.top.annotations).toEqual({ [LAYER_ANNOTATION]: "true" });
    expect(r.notes).toEqual([`added layer ${first.top.digest} (${first.top.size} bytes)`]);
    // The view is read again after a write.
    expect(await f.lookup("/etc/hero/x")).toMatchObject({ type: "file", mode: 0o600 });
    const layerTar = readTar(
      new Uint8Array(
        Bun.gunzipSync(readFileSync(join(layout, "blobs", ...first.top.digest.split(":")))),
      ),
    );
    expect(layerTar.map((e) => e.path)).toEqual(["etc/hero/", "etc/hero/x"]);
    const after = blobs(layout);
    // A second run with other content: still two layers, the old blobs gone.
    await f.apply([{ ...plan[0] } as PlanEntry], { mtime: 0 });
    expect(topLayer(layout).count).toBe(2);
    expect(blobs(layout).length).toBe(after.length);
    expect(blobs(layout)).not.toContain(first.top.digest.split(":")[1]);
    expect(await f.lookup("/etc/hero/x")).toBeNull();
  });

  test("the same plan twice: the same bytes (deterministic layer, config, manifest)", async () => {
    const a = makeLayout("a");
    const b = makeLayout("b");
    await ociFormat(a).apply(plan, { mtime: 7 });
    await ociFormat(b).apply(plan, { mtime: 7 });
    await ociFormat(b).apply(plan, { mtime: 7 });
    expect(readFileSync(join(b, "index.json"), "utf8")).toBe(
      readFileSync(join(a, "index.json"), "utf8"),
    );
    expect(blobs(b)).toEqual(blobs(a));
  });

  test("a tag not in the index: an input error naming the layout and the tag", async () => {
    const layout = makeLayout("tag");
    const f = ociFormat(layout, "nope");
    await expect(f.lookup("/etc")).rejects.toThrow(
      `${layout}: expected one image manifest tagged nope, found 0`,
    );
    expect(await ociFormat(join(root, "missing")).exists()).toBe(false);
  });
});
