/**
 * The UI's HTML, rendered on the server with hono/html: every interpolated
 * value is escaped (service names, states, log lines, spec values), so a
 * service called `<script>` is shown as text. No inline script or style:
 * the Content-Security-Policy allows only /assets/*. Pure functions of the
 * data they are given.
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { Role } from "./auth.ts";
import type { Overview, ServiceDetail, ServiceRow, UpdatesView } from "./source.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** Who is looking: decides which buttons exist. */
export interface Viewer {
  role: Role;
  csrf: string | null;
  /** A password is configured (so a logout button makes sense). */
  loggedIn: boolean;
  terminal: boolean;
}

/** Pure: bytes as KiB/MiB/GiB. */
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Pure: a duration as 3d 4h, 5m 6s, 7.0s. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Pure: the CSS class of a state badge. */
export function stateClass(state: string): string {
  if (state === "Running" || state === "Success") return "ok";
  if (state.startsWith("Error") || state === "Failure") return "bad";
  if (state === "Blocked" || state === "Spawned") return "wait";
  return "idle";
}

function layout(title: string, v: Viewer | null, body: Html, opts: { terminal?: boolean } = {}) {
  const nav = v
    ? html`<nav>
        <a href="/">Overview</a><a href="/services">Services</a><a href="/updates">Updates</a>${
          v.terminal && v.role === "admin" ? html`<a href="/terminal">Terminal</a>` : ""
        }
        <span class="who">${v.role === "admin" ? "admin" : "read-only"}</span>
        ${
          v.loggedIn && v.csrf
            ? html`<form method="post" action="/logout" class="inline">
                <input type="hidden" name="csrf" value="${v.csrf}" /><button>Log out</button>
              </form>`
            : ""
        }
      </nav>`
    : "";
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${title} · hero-init</title>
    <link rel="stylesheet" href="/assets/app.css" />
    ${opts.terminal ? html`<link rel="stylesheet" href="/assets/xterm.css" />` : ""}
    ${opts.terminal ? html`<script src="/assets/xterm.js" defer></script>` : ""}
    <script src="/assets/app.js" defer></script>
  </head>
  <body>
    <header><span class="brand">hero-init</span>${nav}</header>
    <main>${body}</main>
  </body>
</html>`;
}

/** The login form. */
export function loginPage(error: string | null): Html {
  return layout(
    "Log in",
    null,
    html`<h1>Log in</h1>
      ${error ? html`<p class="error" role="alert">${error}</p>` : ""}
      <form method="post" action="/login" class="login">
        <label>Password <input type="password" name="password" autofocus required /></label>
        <button>Log in</button>
      </form>`,
  );
}

/** An error page (403, 404…). */
export function errorPage(v: Viewer | null, title: string, message: string): Html {
  return layout(title, v, html`<h1>${title}</h1><p class="error">${message}</p>`);
}

/**
 * Pure: `back` (where a form returns to after an action) when it is a path on
 * this origin, else `fallback`. A single "/" then path characters only: never
 * "//host" or "/\host" (browsers read both as another host), a scheme,
 * spaces or control characters (browsers drop tabs and newlines from a URL,
 * so "/\t/host" would become "//host"), at most 2,048 characters.
 */
export function sameOriginPath(back: unknown, fallback: string): string {
  if (typeof back !== "string" || back.length > 2048) return fallback;
  return /^\/(?![/\\])[A-Za-z0-9/%._~!*'()@-]*$/.test(back) ? back : fallback;
}

function actions(v: Viewer, s: ServiceRow, back: string): Html | string {
  if (v.role !== "admin" || !v.csrf) return "";
  const name = encodeURIComponent(s.name);
  const btn = (a: string, label: string) =>
    html`<form method="post" action="/services/${name}/${a}" class="inline">
      <input type="hidden" name="csrf" value="${v.csrf}" /><input type="hidden" name="back" value="${back}" />
      <button data-action="${a}">${label}</button>
    </form>`;
  return html`${btn("start", "Start")}${btn("stop", "Stop")}${btn("restart", "Restart")}${btn(
    "kill",
    "Kill",
  )}`;
}

function serviceRows(v: Viewer, rows: ServiceRow[]): Html {
  return html`<table class="services">
    <thead>
      <tr>
        <th>Service</th><th>State</th><th>Target</th><th>PID</th><th>Uptime</th><th>Restarts</th>
        <th>Memory</th><th>CPU</th><th>Last exit / reason</th>${v.role === "admin" ? html`<th>Actions</th>` : ""}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (s) => html`<tr data-service="${s.name}">
          <td><a href="/services/${encodeURIComponent(s.name)}">${s.name}</a></td>
          <td><span class="badge ${stateClass(s.state)}" data-state>${s.state}</span></td>
          <td>${s.target}</td>
          <td data-pid>${s.pid || "–"}</td>
          <td>${fmtDuration(s.uptimeMs)}</td>
          <td>${s.restarts}</td>
          <td>${fmtBytes(s.memoryBytes)}</td>
          <td>${s.cpuUsec === null ? "–" : `${(s.cpuUsec / 1e6).toFixed(2)} s`}</td>
          <td class="reason">${s.reason}</td>
          ${v.role === "admin" ? html`<td class="actions">${actions(v, s, "/services")}</td>` : ""}
        </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The services table. */
export function servicesPage(v: Viewer, rows: ServiceRow[]): Html {
  return layout(
    "Services",
    v,
    html`<h1>Services <small>${rows.length}</small></h1>
      ${rows.length ? serviceRows(v, rows) : html`<p>No services in /etc/zinit.</p>`}`,
  );
}

/** One service: status, spec, live log. */
export function servicePage(v: Viewer, s: ServiceDetail): Html {
  const name = encodeURIComponent(s.name);
  return layout(
    s.name,
    v,
    html`<h1>${s.name} <span class="badge ${stateClass(s.state)}" data-state>${s.state}</span></h1>
      <div class="actions">${actions(v, s, `/services/${name}`)}</div>
      <table class="kv">
        <tr><th>Target</th><td>${s.target}</td></tr>
        <tr><th>PID</th><td data-pid>${s.pid || "–"}</td></tr>
        <tr><th>Uptime</th><td>${fmtDuration(s.uptimeMs)}</td></tr>
        <tr><th>Restarts</th><td>${s.restarts}</td></tr>
        <tr><th>Memory</th><td>${fmtBytes(s.memoryBytes)}</td></tr>
        <tr><th>Reason</th><td class="reason">${s.reason}</td></tr>
        <tr><th>After</th><td>${
          Object.entries(s.after).length
            ? Object.entries(s.after).map(
                ([d, st]) => html`<a href="/services/${encodeURIComponent(d)}">${d}</a> (${st}) `,
              )
            : "–"
        }</td></tr>
      </table>
      <h2>Spec</h2>
      <pre class="spec">${JSON.stringify(s.spec, null, 2)}</pre>
      <h2>Log <small id="log-status">connecting…</small></h2>
      <pre id="log" class="log" data-stream="/api/v1/services/${name}/logs" data-status-url="/api/v1/services/${name}"></pre>`,
  );
}

/** The machine's identity on the overview (nothing when not configured). */
function identityTable(id: Overview["identity"]) {
  if (!id) return "";
  const rows: [string, string][] = [];
  if (id.farmer_id !== undefined) rows.push(["Farmer id", String(id.farmer_id)]);
  if (id.farming_pool_id !== undefined) rows.push(["Farming pool id", String(id.farming_pool_id)]);
  if (id.registrars.length) rows.push(["Registrars", id.registrars.join(", ")]);
  if (id.description !== undefined) rows.push(["Description", id.description]);
  return html`<h2>Identity</h2>
      <table class="kv">
        ${rows.map(([k, val]) => html`<tr><th>${k}</th><td>${val}</td></tr>`)}
      </table>`;
}

/** The overview page. */
export function overviewPage(v: Viewer, o: Overview, rows: ServiceRow[], boot: readonly string[]) {
  const bad = rows.filter((s) => stateClass(s.state) === "bad");
  return layout(
    "Overview",
    v,
    html`<h1>${o.hostname}</h1>
      <section class="cards">
        <div class="card"><h3>Uptime</h3><p>${fmtDuration(o.uptimeS * 1000)}</p></div>
        <div class="card"><h3>Load</h3><p>${o.load.map((x) => (Number.isFinite(x) ? x.toFixed(2) : "–")).join(" ")}</p></div>
        <div class="card"><h3>Memory</h3><p>${
          o.memory
            ? `${fmtBytes(o.memory.totalBytes - o.memory.availableBytes)} used of ${fmtBytes(o.memory.totalBytes)}`
            : "–"
        }</p></div>
        <div class="card"><h3>Services</h3><p>${rows.length} · ${
          bad.length
            ? html`<a class="bad" href="/services">${bad.length} failing</a>`
            : "none failing"
        }</p></div>
      </section>
      ${identityTable(o.identity)}
      <h2>Addresses</h2>
      <table class="kv">
        ${o.interfaces.map(
          (i) =>
            html`<tr><th>${i.name}</th><td>${i.addresses.map(
              (a) =>
                html`<code class="${a.mycelium ? "mycelium" : ""}">${a.address}</code>${a.mycelium ? html` <span class="badge ok">mycelium</span>` : ""} `,
            )}</td></tr>`,
        )}
      </table>
      <h2>Disks</h2>
      <table class="kv">
        ${o.disks.map(
          (d) =>
            html`<tr><th>${d.mount}</th><td>${d.fstype}, ${fmtBytes(d.freeBytes)} free of ${fmtBytes(d.totalBytes)}</td></tr>`,
        )}
      </table>
      <h2>Versions</h2>
      <table class="kv">
        <tr><th>hero-init</th><td>${o.versions.heroInit}</td></tr>
        ${o.versions.binaries.map(
          (b) => html`<tr><th>${b.name}</th><td>${b.current ?? "–"}</td></tr>`,
        )}
      </table>
      <h2>Boot log</h2>
      <pre class="log">${boot.join("\n")}</pre>`,
  );
}

/** The updates page. */
export function updatesPage(v: Viewer, u: UpdatesView): Html {
  const disabled = !u.available || v.role !== "admin";
  const button = (a: string, label: string) =>
    html`<form method="post" action="/updates/${a}" class="inline">
      <input type="hidden" name="csrf" value="${v.csrf ?? ""}" />
      <button ${disabled ? "disabled" : ""}>${label}</button>
    </form>`;
  return layout(
    "Updates",
    v,
    html`<h1>Updates</h1>
      <table class="kv">
        <tr><th>Manifest</th><td>${u.manifest ? `version ${u.manifest.version}${u.manifest.env ? ` (${u.manifest.env})` : ""}` : "none applied yet"}</td></tr>
        <tr><th>Last check</th><td>${u.lastCheck ? `${u.lastCheck.at}: ${u.lastCheck.result}` : "never"}</td></tr>
      </table>
      <p>${button("check", "Check now")}${button("apply", "Apply")}${button("rollback", "Roll back")}</p>
      ${u.available ? "" : html`<p class="note">No updater is configured in this VM: showing what is installed.</p>`}
      <h2>Installed binaries</h2>
      <table class="kv">
        ${
          u.installed.length
            ? u.installed.map(
                (b) =>
                  html`<tr><th>${b.name}</th><td>current ${b.current ?? "–"}; on disk: ${b.versions.join(", ")}</td></tr>`,
              )
            : html`<tr><td>No [vm] binaries installed.</td></tr>`
        }
      </table>`,
  );
}

/** The debug terminal page (only rendered when enabled and for admins). */
export function terminalPage(v: Viewer): Html {
  return layout(
    "Terminal",
    v,
    html`<h1>Terminal <small id="term-status">connecting…</small></h1>
      <div id="terminal" data-ws="/terminal/ws" data-csrf="${v.csrf ?? ""}"></div>`,
    { terminal: true },
  );
}
