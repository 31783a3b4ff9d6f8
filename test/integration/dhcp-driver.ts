/**
 * Runs hero-init's DHCP client (guest/boot/dhcp.ts) on one interface, for
 * test/integration/dhcp.test.ts, inside the client's network namespace:
 * `bun dhcp-driver.ts <iface> <resolv.conf path> <wait ms>`. Brings the
 * interface up, starts the client, prints STARTED when boot would go on,
 * then keeps the client running until killed. Log lines go to stderr.
 */
import { startDhcp } from "../../guest/boot/dhcp.ts";
import { linkUp } from "../../sys/net.ts";

const [iface, resolvPath, wait] = process.argv.slice(2);
if (!iface || !resolvPath || !wait)
  throw new Error("usage: dhcp-driver.ts <iface> <resolv> <waitMs>");
linkUp(iface);
await startDhcp([{ name: iface, staticDns: false, search: [], resolvPath }], Number(wait));
console.log("STARTED");
setInterval(() => {}, 1 << 30);
