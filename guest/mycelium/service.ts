/**
 * The mycelium service, generated from vm.toml's [mycelium] (pure): the
 * manifest's binary with the persisted key file, TUN name, admin API address
 * and peers, restarted with backoff when it dies. Flags are mycelium's own
 * (see docs/mycelium.md), so the real binary and the test stand-in run alike.
 */
import * as v from "valibot";
import { type ServiceSpec, ServiceSpecSchema } from "../../lib/service-spec.ts";
import type { VmConfig } from "../../lib/vm-config.ts";

/** The service's name (a service file of that name in /etc/zinit wins). */
export const MYCELIUM_SERVICE = "mycelium";

function quote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./[\]-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Pure: the exec line for the config. --peers comes last: it takes every value after it. */
export function myceliumExec(m: NonNullable<VmConfig["mycelium"]>): string {
  const args = [
    m.binary,
    "-k",
    m.key_file,
    "--tun-name",
    m.tun_name,
    "--api-addr",
    m.api_addr,
    ...m.extra_args,
  ];
  if (m.peers.length) args.push("--peers", ...m.peers);
  return args.map(quote).join(" ");
}

/** Pure: the service spec (long-running, backoff restarts, logs in the ring). */
export function myceliumService(m: NonNullable<VmConfig["mycelium"]>): ServiceSpec {
  return v.parse(ServiceSpecSchema, {
    exec: myceliumExec(m),
    log: "ring",
    shutdown_timeout: 5,
    restart: { delay: 500, max_delay: 10_000, limit: 0 },
  });
}
