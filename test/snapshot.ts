/**
 * A directory tree as comparable lines (test helper): a refused or rolled-back
 * write must leave these lines exactly as they were.
 */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Every entry under `root`: path, type, mode, owner, link target, content hash. */
export function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    const head = `${rel || "/"} ${(st.mode & 0o177777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.push(`${head} -> ${readlinkSync(p)}`);
    else if (st.isFile())
      out.push(`${head} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`);
    else out.push(head);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(`${rel}/${n}`);
  };
  walk("");
  return out;
}
