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
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { InputError } from "../../lib/errors.ts";
import { inflate, maxUnpacked } from "../../lib/inflate.ts";
import { readTar, type TarEntry, writeTar } from "../../lib/tar.ts";
import type { PlanEntry } from "../plan.ts";
import type { Existing, RootfsFormat } from "./types.ts";

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
    const path = `/${e.path.replace(/^\.?\/*/, "").replace(/\/$/, "")}`;
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

/** Opens an OCI image layout directory (its single manifest, or the one tagged `ref`). */
export function ociFormat(layout: string, ref?: string): RootfsFormat {
  const blob = (d: string) => join(layout, "blobs", ...d.split(":"));
  const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, "utf8")) as T;
  const writeBlob = (data: Uint8Array): string => {
    const d = digestOf(data);
    const p = blob(d);
    if (!existsSync(p)) {
      writeFileSync(`${p}.hero-tmp`, data);
      renameSync(`${p}.hero-tmp`, p);
    }
    return d;
  };
  const pick = () => {
    const index = readJson<{ schemaVersion: number; manifests: Descriptor[] }>(
      join(layout, "index.json"),
    );
    const manifests = index.manifests.filter((m) => m.mediaType === MANIFEST);
    const chosen = ref
      ? manifests.filter((m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref)
      : manifests;
    if (chosen.length !== 1)
      throw new InputError(
        "oci",
        `${layout}: expected one image manifest${ref ? ` tagged ${ref}` : ""}, found ${chosen.length}`,
        { file: join(layout, "index.json") },
      );
    return { index, desc: chosen[0] as Descriptor };
  };
  let view: Map<string, TarEntry> | null = null;
  const load = () => {
    const { desc } = pick();
    const manifest = readJson<{ layers: Descriptor[] }>(blob(desc.digest));
    const v = new Map<string, TarEntry>();
    // The compressed layers together may unpack to at most the limit
    // (lib/inflate.ts): every layer's tar stays in memory for the lookups.
    const max = maxUnpacked();
    let left = max;
    for (const l of manifest.layers) {
      const raw = new Uint8Array(readFileSync(blob(l.digest)));
      const kind = l.mediaType.endsWith("+gzip")
        ? "gzip"
        : l.mediaType.endsWith("+zstd")
          ? "zstd"
          : null;
      const tar = kind
        ? inflate(raw, kind, {
            max: left,
            limit: max,
            what: `layer ${l.digest}`,
            file: blob(l.digest),
          })
        : raw;
      if (kind) left -= tar.length;
      applyLayer(v, readTar(tar));
    }
    return v;
  };

  return {
    kind: "oci",
    exists: async () =>
      existsSync(join(layout, "oci-layout")) && existsSync(join(layout, "index.json")),
    async lookup(p) {
      view ??= load();
      const e = view.get(p);
      if (!e) return null;
      if (e.type === "file")
        return {
          type: "file",
          mode: e.mode & 0o7777,
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          data: async () => e.data ?? new Uint8Array(0),
        } satisfies Existing;
      if (e.type === "dir")
        return { type: "dir", mode: e.mode & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0 };
      return { type: "symlink", target: e.target ?? "" };
    },
    async apply(plan: readonly PlanEntry[], { mtime }) {
      const { index, desc } = pick();
      const manifest = readJson<{
        schemaVersion: number;
        mediaType?: string;
        config: Descriptor;
        layers: Descriptor[];
        annotations?: Record<string, string>;
      }>(blob(desc.digest));
      const config = readJson<
        {
          rootfs: { type: string; diff_ids: string[] };
          history?: {
            created?: string;
            created_by?: string;
            comment?: string;
            empty_layer?: boolean;
          }[];
        } & Record<string, unknown>
      >(blob(manifest.config.digest));
      const old = new Set([desc.digest, manifest.config.digest]);
      // Drop our previous layer (always the top one) so layers never stack up.
      const top = manifest.layers.at(-1);
      if (top?.annotations?.[LAYER_ANNOTATION]) {
        old.add(top.digest);
        manifest.layers.pop();
        config.rootfs.diff_ids.pop();
        const hi = config.history?.findLastIndex((h) => h.created_by === "hero-init inject") ?? -1;
        if (hi >= 0) config.history?.splice(hi, 1);
      }
      const tar = writeTar(
        plan.map((e) =>
          e.kind === "file"
            ? {
                path: e.path.slice(1),
                type: "file",
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime,
                data: e.data,
              }
            : e.kind === "dir"
              ? { path: e.path.slice(1), type: "dir", mode: e.mode, uid: e.uid, gid: e.gid, mtime }
              : {
                  path: e.path.slice(1),
                  type: "symlink",
                  mode: 0o777,
                  uid: e.uid,
                  gid: e.gid,
                  mtime,
                  target: e.target,
                },
        ),
      );
      const gz = new Uint8Array(gzipSync(tar, { level: 6 }));
      const created = new Date(mtime * 1000).toISOString();
      manifest.layers.push({
        mediaType: LAYER_GZIP,
        digest: writeBlob(gz),
        size: gz.length,
        annotations: { [LAYER_ANNOTATION]: "true" },
      });
      config.rootfs.diff_ids.push(digestOf(tar));
      config.history = [
        ...(config.history ?? []),
        {
          created,
          created_by: "hero-init inject",
          comment: "hero-init as PID 1, [vm] binaries, services, VM config",
        },
      ];
      const configBytes = enc.encode(JSON.stringify(config));
      manifest.config = {
        ...manifest.config,
        mediaType: CONFIG,
        digest: writeBlob(configBytes),
        size: configBytes.length,
      };
      const manifestBytes = enc.encode(JSON.stringify(manifest));
      const newDesc: Descriptor = {
        ...desc,
        digest: writeBlob(manifestBytes),
        size: manifestBytes.length,
      };
      index.manifests = index.manifests.map((m) => (m === desc ? newDesc : m));
      writeFileSync(join(layout, "index.json.hero-tmp"), JSON.stringify(index));
      renameSync(join(layout, "index.json.hero-tmp"), join(layout, "index.json"));
      // Remove what is no longer referenced (our old layer, old config and manifest).
      const live = new Set<string>();
      for (const m of index.manifests) {
        live.add(m.digest);
        if (m.mediaType !== MANIFEST || !existsSync(blob(m.digest))) continue;
        const mm = readJson<{ config: Descriptor; layers: Descriptor[] }>(blob(m.digest));
        live.add(mm.config.digest);
        for (const l of mm.layers) live.add(l.digest);
      }
      for (const d of old) if (!live.has(d)) rmSync(blob(d), { force: true });
      view = null;
      return {
        changed: plan.length,
        notes: [`added layer ${manifest.layers.at(-1)?.digest} (${gz.length} bytes)`],
      };
    },
  };
}
