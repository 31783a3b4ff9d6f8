/**
 * An OCI image layout (oci-layout, index.json, blobs/sha256). Injecting adds
 * exactly one layer (a deterministic gzip'd tar of the plan) and updates the
 * config's diff_ids and history, the manifest and the index with the new
 * digests. A re-run replaces hero-init's layer (it carries an annotation)
 * instead of stacking another; blobs no longer referenced are removed.
 * Lookups read the layers in order and honour whiteouts. Every file is
 * written to a temp name and renamed, index.json last.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { atomicWrite } from "../../lib/atomic-file.ts";
import { HeroError } from "../../lib/errors.ts";
import { inflate, maxUnpacked } from "../../lib/inflate.ts";
import { readTar, type TarEntry, writeTar } from "../../lib/tar.ts";
import type { PlanEntry } from "../plan.ts";
import { type ApplyResult, checkReadSize, type Existing, type RootfsFormat } from "./types.ts";

/** The annotation that marks hero-init's layer. */
export const LAYER_ANNOTATION = "org.hero-init.layer";
const LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = "application/vnd.oci.image.config.v1+json";

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: unknown;
}

const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const enc = new TextEncoder();

/** Pure: applies a layer's tar entries to a path view, honouring .wh. whiteouts and opaque dirs. */
export function applyLayer(view: Map<string, TarEntry>, entries: readonly TarEntry[]): void {
  for (const e of entries) {
    // Leading "./" and "/" go; a leading dot of a name (".wh.x", ".profile") stays.
    const path = `/${e.path
      .replace(/^(?:\.?\/)+/, "")
      .replace(/^\.$/, "")
      .replace(/\/$/, "")}`;
    const base = path.split("/").at(-1) ?? "";
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    if (base === ".wh..wh..opq") {
      for (const k of [...view.keys()])
        if (k.startsWith(`${dir === "/" ? "" : dir}/`)) view.delete(k);
      continue;
    }
    if (base.startsWith(".wh.")) {
      const gone = `${dir === "/" ? "" : dir}/${base.slice(4)}`;
      for (const k of [...view.keys()]) if (k === gone || k.startsWith(`${gone}/`)) view.delete(k);
      continue;
    }
    view.set(path, { ...e, path });
  }
}

interface Index {
  schemaVersion: number;
  manifests: Descriptor[];
}

interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

type ImageConfig = {
  rootfs: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
} & Record<string, unknown>;

const INJECT_HISTORY = "hero-init inject";

/** One layout directory's files: blobs by digest, JSON read as it is. */
class Layout {
  constructor(readonly dir: string) {}

  blob(digest: string): string {
    return join(this.dir, "blobs", ...digest.split(":"));
  }

  readJson<T>(path: string): T {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  }

  /** Writes a blob under its digest (temp name, then rename); an existing one is kept. */
  writeBlob(data: Uint8Array): string {
    const d = digestOf(data);
    const p = this.blob(d);
    if (!existsSync(p)) atomicWrite(p, data);
    return d;
  }

  /** The index and the one image manifest in it (the one tagged `ref` when given). */
  pick(ref?: string): { index: Index; desc: Descriptor } {
    const index = this.readJson<Index>(join(this.dir, "index.json"));
    const manifests = index.manifests.filter((m) => m.mediaType === MANIFEST);
    const chosen = ref
      ? manifests.filter((m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref)
      : manifests;
    if (chosen.length !== 1)
      throw new HeroError(
        "oci",
        `${this.dir}: expected one image manifest${ref ? ` tagged ${ref}` : ""}, found ${chosen.length}`,
        { file: join(this.dir, "index.json") },
      );
    return { index, desc: chosen[0] as Descriptor };
  }
}

/** Pure: the compression a layer's media type names, or null for a plain tar. */
export function layerCompression(mediaType: string): "gzip" | "zstd" | null {
  if (mediaType.endsWith("+gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  return null;
}

/** The image's files: every layer of the picked manifest applied in order. */
function loadView(layout: Layout, ref?: string): Map<string, TarEntry> {
  const { desc } = layout.pick(ref);
  const manifest = layout.readJson<{ layers: Descriptor[] }>(layout.blob(desc.digest));
  const v = new Map<string, TarEntry>();
  // The compressed layers together may unpack to at most the limit
  // (lib/inflate.ts): every layer's tar stays in memory for the lookups.
  const max = maxUnpacked();
  let left = max;
  for (const l of manifest.layers) {
    const raw = new Uint8Array(readFileSync(layout.blob(l.digest)));
    const kind = layerCompression(l.mediaType);
    const tar = kind
      ? inflate(raw, kind, {
          max: left,
          limit: max,
          what: `layer ${l.digest}`,
          file: layout.blob(l.digest),
        })
      : raw;
    if (kind) left -= tar.length;
    applyLayer(v, readTar(tar));
  }
  return v;
}

/** Pure: a tar entry of the image view as the injector sees it. */
export function existingOf(e: TarEntry): Existing {
  if (e.type === "file")
    return {
      type: "file",
      mode: e.mode & 0o7777,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      data: async (maxBytes) => {
        checkReadSize(`/${e.path}`, e.data?.length ?? 0, maxBytes);
        return e.data ?? new Uint8Array(0);
      },
    };
  if (e.type === "dir")
    return { type: "dir", mode: e.mode & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0 };
  return { type: "symlink", target: e.target ?? "" };
}

/** Pure: the plan as the entries of hero-init's layer (paths relative, all at `mtime`). */
export function planTarEntries(plan: readonly PlanEntry[], mtime: number): TarEntry[] {
  return plan.map((e) => {
    const common = { path: e.path.slice(1), uid: e.uid, gid: e.gid, mtime };
    if (e.kind === "file") return { ...common, type: "file", mode: e.mode, data: e.data };
    if (e.kind === "dir") return { ...common, type: "dir", mode: e.mode };
    return { ...common, type: "symlink", mode: 0o777, target: e.target };
  });
}

/**
 * Pure: drops hero-init's previous layer (always the top one, marked by the
 * annotation) with its diff_id and history entry, so layers never stack up.
 * Returns the dropped layer's digest, or null when the top layer is not ours.
 */
export function dropOwnLayer(manifest: Manifest, config: ImageConfig): string | null {
  const top = manifest.layers.at(-1);
  if (!top?.annotations?.[LAYER_ANNOTATION]) return null;
  manifest.layers.pop();
  config.rootfs.diff_ids.pop();
  const hi = config.history?.findLastIndex((h) => h.created_by === INJECT_HISTORY) ?? -1;
  if (hi >= 0) config.history?.splice(hi, 1);
  return top.digest;
}

/** Pure: records a new layer (its blob digest and size, its tar's digest) in manifest and config. */
export function addOwnLayer(
  manifest: Manifest,
  config: ImageConfig,
  layer: { digest: string; size: number; diffId: string; mtime: number },
): void {
  manifest.layers.push({
    mediaType: LAYER_GZIP,
    digest: layer.digest,
    size: layer.size,
    annotations: { [LAYER_ANNOTATION]: "true" },
  });
  config.rootfs.diff_ids.push(layer.diffId);
  config.history = [
    ...(config.history ?? []),
    {
      created: new Date(layer.mtime * 1000).toISOString(),
      created_by: INJECT_HISTORY,
      comment: "hero-init as PID 1, [vm] binaries, services, VM config",
    },
  ];
}

/** Digests still referenced by the index: its manifests, their configs and layers. */
function liveDigests(layout: Layout, index: Index): Set<string> {
  const live = new Set<string>();
  for (const m of index.manifests) {
    live.add(m.digest);
    if (m.mediaType !== MANIFEST || !existsSync(layout.blob(m.digest))) continue;
    const mm = layout.readJson<{ config: Descriptor; layers: Descriptor[] }>(layout.blob(m.digest));
    live.add(mm.config.digest);
    for (const l of mm.layers) live.add(l.digest);
  }
  return live;
}

/**
 * Writes the plan as hero-init's layer (replacing the previous one): new
 * blobs first, index.json last (renamed into place), then the blobs no
 * longer referenced are removed.
 */
function applyPlan(
  layout: Layout,
  ref: string | undefined,
  plan: readonly PlanEntry[],
  mtime: number,
): ApplyResult {
  const { index, desc } = layout.pick(ref);
  const manifest = layout.readJson<Manifest>(layout.blob(desc.digest));
  const config = layout.readJson<ImageConfig>(layout.blob(manifest.config.digest));
  const old = new Set([desc.digest, manifest.config.digest]);
  const dropped = dropOwnLayer(manifest, config);
  if (dropped) old.add(dropped);
  const tar = writeTar(planTarEntries(plan, mtime));
  const gz = new Uint8Array(gzipSync(tar, { level: 6 }));
  addOwnLayer(manifest, config, {
    digest: layout.writeBlob(gz),
    size: gz.length,
    diffId: digestOf(tar),
    mtime,
  });
  const configBytes = enc.encode(JSON.stringify(config));
  manifest.config = {
    ...manifest.config,
    mediaType: CONFIG,
    digest: layout.writeBlob(configBytes),
    size: configBytes.length,
  };
  const manifestBytes = enc.encode(JSON.stringify(manifest));
  const newDesc: Descriptor = {
    ...desc,
    digest: layout.writeBlob(manifestBytes),
    size: manifestBytes.length,
  };
  index.manifests = index.manifests.map((m) => (m === desc ? newDesc : m));
  atomicWrite(join(layout.dir, "index.json"), JSON.stringify(index));
  // Remove what is no longer referenced (our old layer, old config and manifest).
  const live = liveDigests(layout, index);
  for (const d of old) if (!live.has(d)) rmSync(layout.blob(d), { force: true });
  return {
    changed: plan.length,
    notes: [`added layer ${manifest.layers.at(-1)?.digest} (${gz.length} bytes)`],
  };
}

/** Opens an OCI image layout directory (its single manifest, or the one tagged `ref`). */
export function ociFormat(dir: string, ref?: string): RootfsFormat {
  const layout = new Layout(dir);
  let view: Map<string, TarEntry> | null = null;
  return {
    kind: "oci",
    exists: async () => existsSync(join(dir, "oci-layout")) && existsSync(join(dir, "index.json")),
    async lookup(p) {
      view ??= loadView(layout, ref);
      const e = view.get(p);
      return e ? existingOf(e) : null;
    },
    async apply(plan: readonly PlanEntry[], { mtime }) {
      const result = applyPlan(layout, ref, plan, mtime);
      view = null;
      return result;
    },
  };
}
