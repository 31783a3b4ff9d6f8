/**
 * Kernel command line parsing (pure). The kernel does not pass dotted
 * parameters such as `hero.hostname=x` to init, so PID 1 reads /proc/cmdline
 * itself. `hero.*` parameters override vm.toml; `ip=` follows the kernel's
 * nfsroot syntax (Documentation/admin-guide/nfs/nfsroot.rst), static or dhcp.
 */

/** Splits a command line the way the kernel does (double quotes group). */
export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let has = false;
  for (const ch of cmdline.trim()) {
    if (ch === '"') {
      quoted = !quoted;
      has = true;
    } else if (/\s/.test(ch) && !quoted) {
      if (has) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** key → value for every `key=value` parameter (a bare flag maps to ""). Last wins. */
export function cmdlineParams(cmdline: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const tok of splitCmdline(cmdline)) {
    const eq = tok.indexOf("=");
    if (eq < 0) map.set(tok, "");
    else map.set(tok.slice(0, eq), tok.slice(eq + 1));
  }
  return map;
}

/** An interface configuration from `ip=`: static, or DHCP. */
export interface IpParam {
  device?: string;
  address?: string; // CIDR
  gateway?: string;
  hostname?: string;
  dns: string[];
  /** `ip=dhcp` or autoconf `dhcp`/`on`/`any`: the address comes from a DHCP server. */
  dhcp?: boolean;
}

/** Autoconf values that mean DHCP (the kernel's `on`/`any` try every protocol; DHCP is ours). */
const DHCP_FORMS = ["dhcp", "on", "any"];

function maskToPrefix(mask: string): number | null {
  const parts = mask.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    return null;
  const bits = parts.reduce((acc, p) => acc * 256 + p, 0);
  const bin = bits.toString(2).padStart(32, "0");
  return /^1*0*$/.test(bin) ? (bin.indexOf("0") === -1 ? 32 : bin.indexOf("0")) : null;
}

/**
 * Parses `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>`,
 * or `ip=dhcp` (device eth0). Returns an error string for forms hero-init
 * does not do (bootp, rarp, IPv6 autoconf).
 */
export function parseIpParam(value: string): IpParam | { error: string } {
  if (DHCP_FORMS.includes(value)) return { dns: [], dhcp: true };
  if (["bootp", "rarp", "both", "dhcp6", "auto6"].includes(value)) {
    return { error: `ip=${value}: not supported; use ip=dhcp or a static address` };
  }
  if (value === "off" || value === "none") return { dns: [] };
  const f = value.split(":");
  const [client, , gw, mask, hostname, device, autoconf, dns0, dns1] = f;
  const dhcp = !!autoconf && DHCP_FORMS.includes(autoconf);
  if (autoconf && !dhcp && !["off", "none", ""].includes(autoconf)) {
    return { error: `ip=: autoconf "${autoconf}" is not supported; use "off" or "dhcp"` };
  }
  const res: IpParam = { dns: [dns0, dns1].filter((d): d is string => !!d) };
  if (device) res.device = device;
  if (hostname) res.hostname = hostname;
  if (dhcp) {
    res.dhcp = true;
    return res; // client, gateway and netmask come from the lease
  }
  if (gw) res.gateway = gw;
  if (client) {
    const prefix = mask ? maskToPrefix(mask) : 24;
    if (prefix === null) return { error: `ip=: netmask "${mask}" is not a valid netmask` };
    res.address = `${client}/${prefix}`;
  }
  return res;
}

/**
 * Applies command-line overrides to a raw (unvalidated) vm.toml object, so
 * they go through the same validation. Returns the problems it saw.
 */
export function applyCmdlineOverrides(
  raw: Record<string, unknown>,
  params: Map<string, string>,
): string[] {
  const problems: string[] = [];
  const list = (s: string) => s.split(",").filter(Boolean);
  const section = (name: string): Record<string, unknown> => {
    const cur = raw[name];
    if (typeof cur === "object" && cur !== null && !Array.isArray(cur))
      return cur as Record<string, unknown>;
    const fresh: Record<string, unknown> = {};
    raw[name] = fresh;
    return fresh;
  };
  for (const [key, value] of params) {
    switch (key) {
      case "hero.hostname":
        raw.hostname = value;
        break;
      case "hero.modules":
        raw.modules = [...(Array.isArray(raw.modules) ? raw.modules : []), ...list(value)];
        break;
      case "hero.dns":
        section("network").dns = list(value);
        break;
      case "hero.ui.port":
        section("ui").port = Number(value);
        break;
      case "hero.ui.listen":
        section("ui").listen = list(value);
        break;
      case "hero.ui.allow":
        section("ui").allow = list(value);
        break;
      case "ip": {
        const ip = parseIpParam(value);
        if ("error" in ip) {
          problems.push(ip.error);
          break;
        }
        const net = section("network");
        if (ip.hostname) raw.hostname = ip.hostname;
        if (ip.dns.length) net.dns = ip.dns;
        if (ip.address || ip.dhcp) {
          const iface: Record<string, unknown> = { name: ip.device ?? "eth0" };
          if (ip.dhcp) iface.dhcp = true;
          else iface.address = ip.address;
          if (ip.gateway) iface.gateway = ip.gateway;
          const others = Array.isArray(net.interfaces)
            ? (net.interfaces as Record<string, unknown>[]).filter((i) => i?.name !== iface.name)
            : [];
          net.interfaces = [...others, iface];
        }
        break;
      }
      default:
        if (key.startsWith("hero.") && !KNOWN_OTHER.has(key))
          problems.push(`unknown parameter ${key}`);
    }
  }
  return problems;
}

/** hero.* parameters read elsewhere (pre-init, fault injection). */
const KNOWN_OTHER = new Set([
  "hero.init",
  "hero.fault",
  "hero.config",
  "hero.overlay",
  "hero.rootinit",
]);
