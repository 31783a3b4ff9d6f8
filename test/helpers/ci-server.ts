/**
 * A CI service's runner registration, for job VM tests: a Hono app on
 * Bun.serve modelled on the GitHub Actions flow (registration token →
 * runner config → one job → removal). GitHub's own endpoints cannot be
 * used here (no network, no repository); this is a stand-in with the same
 * steps and failure modes:
 *
 *   POST   <base>/runners/register  RemoteAuth <registration token>  → {id, credential}
 *          401 for an expired or unknown token; 403 everywhere under /closed
 *   GET    <base>/jobs/next         Bearer <credential>  → the job's script (text)
 *   POST   <base>/jobs/result       Bearer <credential>  body "exit=N"
 *   DELETE <base>/runners/:id       Bearer <credential>  → 204
 *
 * Every step is recorded in `events` (in order), with the runner's name.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";

/** One step the server saw. */
export interface CiEvent {
  step: "register" | "refused" | "job" | "result" | "removed";
  runner?: string;
  labels?: string[];
  detail?: string;
}

/** The running server. */
export interface CiServer {
  port: number;
  events: CiEvent[];
  /** Runners registered and not yet removed, by id. */
  live: Map<string, { name: string; credential: string }>;
  stop(): Promise<void>;
}

/** Starts the server; `tokens` maps each registration token to "valid" or "expired". */
export function startCiServer(
  tokens: Record<string, "valid" | "expired">,
  jobScript: string,
): CiServer {
  const events: CiEvent[] = [];
  const live = new Map<string, { name: string; credential: string }>();
  let nextId = 1;
  const runnerOf = (auth: string | undefined) => {
    const cred = /^Bearer (\S+)$/.exec(auth ?? "")?.[1];
    for (const [id, r] of live) if (r.credential === cred) return { id, ...r };
    return null;
  };
  const app = new Hono();
  app.post("/closed/runners/register", (c) => {
    events.push({ step: "refused" });
    return c.json({ message: "runner registration is disabled for this repository" }, 403);
  });
  app.post("/ci/runners/register", async (c) => {
    const token = /^RemoteAuth (\S+)$/.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
    const body = (await c.req.json()) as { name: string; labels: string[]; ephemeral: boolean };
    if (tokens[token] !== "valid") {
      events.push({ step: "refused", runner: body.name, detail: tokens[token] ?? "unknown" });
      return c.json({ message: "registration token expired or invalid" }, 401);
    }
    const id = String(nextId++);
    const credential = randomBytes(24).toString("base64url");
    live.set(id, { name: body.name, credential });
    events.push({ step: "register", runner: body.name, labels: body.labels });
    return c.json({ id, credential }, 201);
  });
  app.get("/ci/jobs/next", (c) => {
    const r = runnerOf(c.req.header("authorization"));
    if (!r) return c.text("unknown runner", 401);
    events.push({ step: "job", runner: r.name });
    return c.text(jobScript);
  });
  app.post("/ci/jobs/result", async (c) => {
    const r = runnerOf(c.req.header("authorization"));
    if (!r) return c.text("unknown runner", 401);
    events.push({ step: "result", runner: r.name, detail: await c.req.text() });
    return c.text("ok");
  });
  app.delete("/ci/runners/:id", (c) => {
    const r = runnerOf(c.req.header("authorization"));
    if (!r || r.id !== c.req.param("id")) return c.text("unknown runner", 401);
    live.delete(r.id);
    events.push({ step: "removed", runner: r.name });
    return c.body(null, 204);
  });
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
  return {
    port: server.port as number,
    events,
    live,
    stop: () => server.stop(true),
  };
}
