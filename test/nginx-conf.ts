/**
 * The nginx config the tests and the benchmark run: the ```nginx server
 * block of docs/bootstrap-server.md (extracted, so the documented config is
 * what is tested), with listen and root pointed at the caller's, wrapped in
 * a main config that runs as the current user in a private prefix.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const DOC = join(import.meta.dir, "../docs/bootstrap-server.md");

export function nginxConfigFromDoc(o: {
  port: number;
  root: string;
  /** nginx's prefix (pid file, temp paths). */
  prefix: string;
  /** Access log file, or null for none. */
  accessLog: string | null;
  workerConnections?: number;
}): string {
  const m = /```nginx\n([\s\S]*?)```/.exec(readFileSync(DOC, "utf8"));
  if (!m?.[1]) throw new Error(`${DOC}: no \`\`\`nginx block`);
  const before = m[1];
  const block = before
    .replace(/^\s*listen \[::\]:\d+;\n/m, "")
    .replace(/^(\s*)listen \d+;/m, `$1listen 127.0.0.1:${o.port};`)
    .replace(/^(\s*)root [^;]+;/m, `$1root ${o.root};`);
  if (block === before || !block.includes(`root ${o.root};`))
    throw new Error(`${DOC}: the nginx block lost its listen/root lines`);
  const p = (s: string) => join(o.prefix, s);
  // As root, nginx would hand the workers to "nobody", who cannot read a 0700 temp dir.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  return `${user}daemon off;
worker_processes 1;
pid ${p("nginx.pid")};
error_log stderr warn;
events { worker_connections ${o.workerConnections ?? 64}; }
http {
  access_log ${o.accessLog ?? "off"};
  client_body_temp_path ${p("body")};
  proxy_temp_path ${p("proxy")};
  fastcgi_temp_path ${p("fastcgi")};
  uwsgi_temp_path ${p("uwsgi")};
  scgi_temp_path ${p("scgi")};
${block}
}
`;
}
