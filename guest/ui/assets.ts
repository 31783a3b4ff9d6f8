import xtermCss from "@xterm/xterm/css/xterm.css" with { type: "text" };
import xtermJs from "@xterm/xterm/lib/xterm.js" with { type: "text" };
import appCss from "./assets/app.css" with { type: "text" };
// @ts-expect-error a browser script imported as text: it has no types, by design
import appJs from "./assets/app.js" with { type: "text" };
export const ASSETS = { appCss, appJs: appJs as string, xtermCss, xtermJs };
