/**
 * The interface every rootfs format implements, so `inject` does not know
 * which one it writes: a directory, an ext4 image, an initramfs or an OCI
 * image layout.
 */
import { HeroError } from "../../lib/errors.ts";
import type { PlanEntry } from "../plan.ts";

/** What an entry in the rootfs is, as far as injection cares. */
export type Existing =
  | {
      type: "file";
      mode: number;
      uid: number;
      gid: number;
      /**
       * The file's bytes. With `maxBytes`, a larger file is refused before it
       * is read (an image's file is outside input: it may be any size).
       */
      data: (maxBytes?: number) => Promise<Uint8Array>;
    }
  | { type: "dir"; mode: number; uid: number; gid: number }
  | { type: "symlink"; target: string }
  | { type: "other" };

/** Result of applying a plan. */
export interface ApplyResult {
  /** Entries written or changed (0 on an idempotent re-run). */
  changed: number;
  /** Human-readable notes (e.g. "/sbin/init kept as /sbin/init.before-hero"). */
  notes: string[];
}

/** A rootfs in some format. */
export interface RootfsFormat {
  readonly kind: "dir" | "ext4" | "initramfs" | "oci";
  /** Whether the target exists yet (an initramfs or image can be created). */
  exists(): Promise<boolean>;
  /**
   * Looks up a guest path, links in its parents followed inside the rootfs
   * (host/root-path.ts), a final symlink not followed; null if
   * absent or unreachable (a dangling link or a loop on the way).
   */
  lookup(path: string): Promise<Existing | null>;
  /** Writes the plan. Either everything is written, or the target is left as it was. */
  apply(
    plan: readonly PlanEntry[],
    opts: { mtime: number; progress?: (msg: string) => void },
  ): Promise<ApplyResult>;
}

/** Refuses `size` bytes of `path` over `maxBytes` (the formats' `data(maxBytes)`). */
export function checkReadSize(path: string, size: number, maxBytes: number | undefined): void {
  if (maxBytes !== undefined && size > maxBytes)
    throw new HeroError("image", `${path} in the image is over ${maxBytes} bytes (${size})`, {
      file: path,
    });
}
