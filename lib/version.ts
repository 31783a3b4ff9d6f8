/** hero-init's version, from package.json (bundled into the binary at build). */
import pkg from "../package.json" with { type: "json" };

/** The version string reported by `hero-init version`, the UI and the agent. */
export const VERSION: string = pkg.version;
