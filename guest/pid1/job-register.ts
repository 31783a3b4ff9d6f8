/**
 * CI runner registration for job VMs (seed 004, modelled on the GitHub
 * Actions flow; docs/jobs.md has the wire format). PID 1 trades the
 * short-lived registration token for a runner credential:
 *
 *   POST <url>/runners/register   Authorization: RemoteAuth <token>
 *        {"name", "labels", "ephemeral": true}  →  {"id", "credential"}
 *
 * the job (the runner) fetches and runs its one job with that credential
 * (from the 0600 runtime file), and after the job PID 1 removes the runner:
 *
 *   DELETE <url>/runners/<id>     Authorization: Bearer <credential>
 *
 * The token stays in PID 1's memory: it is never written anywhere, and a
 * server that echoes it back does not get it into a log line or HERO-EXIT.
 * Answers are read up to 64 KiB; each call has a deadline.
 */
import { JOB_EXIT, type JobConfig, type JobOutcome, jobLog } from "./job-runner.ts";

type RegistrationConfig = NonNullable<JobConfig["registration"]>;

/** A registered runner. */
export interface Registration {
  url: string;
  id: string;
  credential: string;
}

const MAX_ANSWER = 64 * 1024;
const CALL_TIMEOUT_MS = 30_000;
const idRe = /^[A-Za-z0-9_.-]{1,64}$/;
const credentialRe = /^[A-Za-z0-9_.~+/=-]{16,4096}$/;

/** Pure: a server's text made safe for a log line: no secret, no control characters, bounded. */
export function sanitize(text: string, secrets: readonly string[]): string {
  let t = text;
  for (const s of secrets) if (s) t = t.split(s).join("[redacted]");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  t = t.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** Reads at most MAX_ANSWER bytes of a body (a hostile server cannot grow PID 1's memory). */
async function boundedText(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > MAX_ANSWER) {
      await reader.cancel().catch(() => {});
      throw new Error(`answer larger than ${MAX_ANSWER} bytes`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Pure: the registration answer's outcome for an HTTP status and body. */
export function registrationOutcome(
  status: number,
  body: string,
  token: string,
): Omit<Registration, "url"> | JobOutcome {
  let j: { id?: unknown; credential?: unknown; message?: unknown } = {};
  try {
    j = JSON.parse(body);
  } catch {
    // not JSON: said as text below
  }
  const said = sanitize(typeof j?.message === "string" ? j.message : body, [token]);
  if (status === 401)
    return {
      code: JOB_EXIT.TOKEN,
      message: `runner registration: token expired or invalid (HTTP 401${said ? `: ${said}` : ""})`,
    };
  if (status < 200 || status > 299)
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `runner registration refused (HTTP ${status}${said ? `: ${said}` : ""})`,
    };
  const id = typeof j?.id === "number" ? String(j.id) : j?.id;
  if (typeof id !== "string" || !idRe.test(id) || typeof j.credential !== "string")
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: "runner registration: the answer has no valid id and credential",
    };
  if (!credentialRe.test(j.credential) || j.credential === token)
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: "runner registration: the credential is not a token (16-4096 URL-safe characters)",
    };
  return { id, credential: j.credential };
}

const base = (url: string) => url.replace(/\/+$/, "");

/** Registers the runner; resolves with its registration or the outcome that ends the VM. */
export async function registerRunner(
  reg: RegistrationConfig,
  token: string,
): Promise<Registration | JobOutcome> {
  jobLog("info", `registering runner ${reg.runner_name} at ${reg.url}`);
  if (!token)
    return { code: JOB_EXIT.TOKEN, message: "runner registration: the token file is empty" };
  let status: number;
  let body: string;
  try {
    const res = await fetch(`${base(reg.url)}/runners/register`, {
      method: "POST",
      headers: { authorization: `RemoteAuth ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: reg.runner_name, labels: reg.labels, ephemeral: true }),
      redirect: "error",
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    status = res.status;
    body = await boundedText(res);
  } catch (e) {
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `runner registration at ${reg.url} failed: ${sanitize(String((e as Error).message), [token])}`,
    };
  }
  const out = registrationOutcome(status, body, token);
  if ("code" in out) return out;
  jobLog("info", `runner ${reg.runner_name} registered (id ${out.id})`);
  return { url: reg.url, ...out };
}

/** Removes the runner after its job; resolves with null, or why it failed (never throws). */
export async function removeRunner(r: Registration): Promise<string | null> {
  try {
    const res = await fetch(`${base(r.url)}/runners/${encodeURIComponent(r.id)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${r.credential}` },
      redirect: "error",
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const said = sanitize(await boundedText(res).catch(() => ""), [r.credential]);
    if (res.ok || res.status === 404) {
      jobLog("info", `runner ${r.id} removed from ${r.url}`);
      return null;
    }
    return `HTTP ${res.status}${said ? `: ${said}` : ""}`;
  } catch (e) {
    return sanitize(String((e as Error).message), [r.credential]);
  }
}

/** Pure: the runtime file the job reads (JSON; 0600, deleted once read). */
export function runnerFile(reg: RegistrationConfig, r: Registration): string {
  return `${JSON.stringify({ url: r.url, id: r.id, name: reg.runner_name, labels: reg.labels, credential: r.credential })}\n`;
}
