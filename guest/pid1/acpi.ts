/**
 * The ACPI power button (QEMU's system_powerdown, Cloud Hypervisor's
 * power-button): the kernel's `button` driver turns it into a KEY_POWER
 * press on an evdev device named "Power Button". We read those input events
 * directly, as logind or acpid would on a full distribution.
 */

import { readdirSync, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { log } from "../../lib/log.ts";

const EV_KEY = 1;
const KEY_POWER = 116;
const EVENT_SIZE = 24; // struct input_event on 64-bit: timeval(16) type(2) code(2) value(4)

/** Pure: true if the buffer holds a KEY_POWER press among its input events. */
export function hasPowerPress(buf: Uint8Array, length: number): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off + EVENT_SIZE <= length; off += EVENT_SIZE) {
    if (
      dv.getUint16(off + 16, true) === EV_KEY &&
      dv.getUint16(off + 18, true) === KEY_POWER &&
      dv.getInt32(off + 20, true) === 1
    ) {
      return true;
    }
  }
  return false;
}

/** /dev/input/eventN devices whose name says they are a power button. */
export function powerButtonDevices(): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync("/sys/class/input").filter((e) => e.startsWith("event"));
  } catch {
    return [];
  }
  return entries
    .filter((e) => {
      try {
        return /power button/i.test(readFileSync(`/sys/class/input/${e}/device/name`, "utf8"));
      } catch {
        return false;
      }
    })
    .map((e) => `/dev/input/${e}`);
}

async function watch(dev: string, onPress: () => void): Promise<void> {
  const fh = await open(dev, "r");
  const buf = new Uint8Array(EVENT_SIZE * 16);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead <= 0) break;
    if (hasPowerPress(buf, bytesRead)) onPress();
  }
}

/** Watches every power button device; calls `onPress` on each press. */
export function watchPowerButton(onPress: () => void): number {
  const devs = powerButtonDevices();
  for (const dev of devs) {
    watch(dev, onPress).catch((e) => log.warn("acpi", `${dev}: ${(e as Error).message}`));
  }
  if (devs.length === 0)
    log.warn("acpi", "no power button input device (modules button/evdev missing?)");
  else log.info("acpi", `watching ${devs.join(", ")}`);
  return devs.length;
}
