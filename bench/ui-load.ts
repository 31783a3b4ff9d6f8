/**
 * Load generator for bench/ui.ts: CONNS concurrent loops of GET URL for
 * SECONDS; prints {rps, p50, p99, errors} as JSON. A separate process, so it
 * never shares the measured server's event loop.
 */
import { percentile } from "./lib.ts";

const [url, secs, conns] = process.argv.slice(2);
const end = performance.now() + Number(secs) * 1000;
const lat: number[] = [];
let errors = 0;
await Promise.all(
  Array.from({ length: Number(conns) }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const r = await fetch(url as string);
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
        lat.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  }),
);
console.log(
  JSON.stringify({
    rps: lat.length / Number(secs),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    errors,
  }),
);
