// hero-init UI: live logs (SSE), live service state, the debug terminal.
// Served from /assets/app.js (the CSP forbids inline scripts). Everything
// from the server is inserted as text, never as HTML.

const MAX_LOG_LINES = 2000;

function followLog(pre) {
  const status = document.getElementById("log-status");
  const setStatus = (t) => {
    if (status) status.textContent = t;
  };
  const es = new EventSource(pre.dataset.stream);
  const append = (text, cls) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const line = document.createElement("span");
    if (cls) line.className = cls;
    line.textContent = `${text}\n`;
    pre.appendChild(line);
    while (pre.childNodes.length > MAX_LOG_LINES) pre.removeChild(pre.firstChild);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  es.addEventListener("open", () => setStatus("live"));
  es.addEventListener("error", () => setStatus("reconnecting…"));
  es.addEventListener("log", (ev) => {
    const l = JSON.parse(ev.data);
    const t = new Date(l.time).toISOString().slice(11, 23);
    append(`${t} ${l.stream === "stderr" ? "[-]" : "[+]"} ${l.service}: ${l.text}`, l.stream);
  });
  es.addEventListener("gap", (ev) => {
    append(`… ${JSON.parse(ev.data).missed} lines no longer in the buffer …`, "gap");
  });
}

function badgeClass(state) {
  if (state === "Running" || state === "Success") return "ok";
  if (state.startsWith("Error") || state === "Failure") return "bad";
  if (state === "Blocked" || state === "Spawned") return "wait";
  return "idle";
}

function paint(root, s) {
  const st = root.querySelector("[data-state]");
  if (st && st.textContent !== s.state) {
    st.textContent = s.state;
    st.className = `badge ${badgeClass(s.state)}`;
  }
  const pid = root.querySelector("[data-pid]");
  if (pid) pid.textContent = s.pid ? String(s.pid) : "–";
}

function pollStates() {
  const detail = document.querySelector("[data-status-url]");
  const rows = document.querySelectorAll("tr[data-service]");
  if (!detail && rows.length === 0) return;
  const tick = async () => {
    try {
      if (detail) {
        const r = await fetch(detail.dataset.statusUrl, { credentials: "same-origin" });
        if (r.ok) paint(document.querySelector("main"), await r.json());
      } else {
        const r = await fetch("/api/v1/services", { credentials: "same-origin" });
        if (r.ok) {
          const byName = new Map((await r.json()).map((s) => [s.name, s]));
          for (const row of rows) {
            const s = byName.get(row.dataset.service);
            if (s) paint(row, s);
          }
        }
      }
    } catch {
      // the VM may be rebooting: try again on the next tick
    }
  };
  setInterval(tick, 1000);
}

function openTerminal(el) {
  const status = document.getElementById("term-status");
  const term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14 });
  term.open(el);
  const size = () => {
    // Fit to the container: cell size from the rendered geometry.
    const core = el.querySelector(".xterm-screen");
    const w = el.clientWidth;
    const h = Math.max(200, window.innerHeight - el.getBoundingClientRect().top - 24);
    const cw = core ? core.clientWidth / term.cols : 9;
    const ch = core ? core.clientHeight / term.rows : 17;
    const cols = Math.max(20, Math.floor(w / (cw || 9)));
    const rows = Math.max(5, Math.floor(h / (ch || 17)));
    if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
  };
  size();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = new URLSearchParams({ csrf: el.dataset.csrf, cols: term.cols, rows: term.rows });
  const ws = new WebSocket(`${proto}://${location.host}${el.dataset.ws}?${q}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    if (status) status.textContent = "connected";
    term.focus();
  };
  ws.onclose = (ev) => {
    if (status) status.textContent = `closed${ev.reason ? `: ${ev.reason}` : ""}`;
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") term.write(`\r\n[${ev.data}]\r\n`);
    else term.write(new Uint8Array(ev.data));
  };
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: "i", d }));
  });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: "r", c: cols, r: rows }));
  });
  window.addEventListener("resize", size);
  window.heroTerminal = term;
}

document.addEventListener("DOMContentLoaded", () => {
  const pre = document.querySelector("pre[data-stream]");
  if (pre) followLog(pre);
  pollStates();
  const t = document.getElementById("terminal");
  if (t && window.Terminal) openTerminal(t);
  for (const b of document.querySelectorAll(
    "button[data-action='kill'], button[data-action='stop']",
  )) {
    b.addEventListener("click", (ev) => {
      const name = b.closest("[data-service]")?.dataset.service ?? document.title.split(" ·")[0];
      if (!confirm(`${b.dataset.action} ${name}?`)) ev.preventDefault();
    });
  }
});
