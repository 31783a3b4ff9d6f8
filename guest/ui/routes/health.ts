/**
 * What /health reports: for probes and the host (deploy_vm waits on it).
 * Answered by the UI's front (../front.ts) and by the full app alike.
 */
import { VERSION } from "../../../lib/version.ts";

/** What /health needs. */
export interface HealthDeps {
  hostname(): string;
  uptime(): number;
  /** mycelium's state and address (null when the VM has no [mycelium]). */
  mycelium?: () => unknown;
}

/** The body of /health. */
export function healthReport(deps: HealthDeps) {
  return {
    status: "ok",
    version: VERSION,
    hostname: deps.hostname(),
    uptime: deps.uptime(),
    mycelium: deps.mycelium?.() ?? null,
  };
}
