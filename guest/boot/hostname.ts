/**
 * Boot step 5: host name (sethostname(2)) and /etc/hosts. An /etc/hosts the
 * rootfs already has is kept; only a line for our host name is added if it
 * is missing, so operators' entries survive.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { log } from "../../lib/log.ts";
import { sethostname } from "../../sys/ffi.ts";
import type { BootStep } from "./context.ts";

/** Pure: the new /etc/hosts text, or null if `current` already names `hostname`. */
export function hostsFile(current: string | null, hostname: string): string | null {
  const short = hostname.split(".")[0] ?? hostname;
  const names = short === hostname ? hostname : `${hostname} ${short}`;
  if (current === null) {
    return `# written by hero-init\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${names}\n`;
  }
  const has = current
    .split("\n")
    .some((l) => !l.trimStart().startsWith("#") && l.split(/\s+/).slice(1).includes(hostname));
  if (has) return null;
  return `${current.replace(/\n?$/, "\n")}127.0.1.1\t${names}\n`;
}

/** Sets the host name and writes /etc/hosts and /etc/hostname; `how` is appended to the log line. */
export function applyHostname(name: string, how = ""): void {
  sethostname(name);
  try {
    const current = existsSync("/etc/hosts") ? readFileSync("/etc/hosts", "utf8") : null;
    const next = hostsFile(current, name);
    if (next !== null) writeFileSync("/etc/hosts", next);
    writeFileSync("/etc/hostname", `${name}\n`);
  } catch (e) {
    log.warn("hostname", `cannot write /etc/hosts: ${(e as Error).message}`);
  }
  log.info("hostname", `${name}${how}`);
}

/** The hostname step. */
export const hostnameStep: BootStep = {
  name: "hostname",
  run(ctx) {
    applyHostname(ctx.config.hostname);
  },
};
