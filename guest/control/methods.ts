/**
 * The JSON-RPC methods hero-init serves, as one table: each method's
 * description, parameters (name, JSON type, required; by position or by
 * name), result and handler. The dispatcher (jsonrpc.ts) and the OpenRPC
 * document rpc.discover returns are both made from it, so a method cannot be
 * served without being documented, nor documented without being served.
 * The service_, system_ and stream_ methods are zinit's (names, parameters,
 * error texts: zinit's clients talk to this socket); mycelium_ and update_
 * are hero-init's own. None may change shape: they are a wire protocol.
 */
import type { ServiceSpecInput } from "../../lib/service-spec.ts";
import { boundedLogs, type ControlApi, controlError, RPC } from "./protocol.ts";

/** A JSON Schema, as OpenRPC embeds it. */
type Schema = Record<string, unknown>;

/** One parameter: a string (optional or not) or an object (always required). */
type ParamSpec =
  | { readonly type: "string"; readonly required: boolean; readonly description: string }
  | { readonly type: "object"; readonly required: true; readonly description: string };

/** A method's parameters, in positional order (JavaScript keeps string keys in insertion order). */
type ParamSpecs = Readonly<Record<string, ParamSpec>>;

const required = (description: string) =>
  ({ type: "string", required: true, description }) as const;
const optional = (description: string) =>
  ({ type: "string", required: false, description }) as const;
const object = (description: string) => ({ type: "object", required: true, description }) as const;

type ParamValue<S extends ParamSpec> = S extends { type: "object" }
  ? Record<string, unknown>
  : S extends { required: true }
    ? string
    : string | undefined;

/** A handler's parameters: each checked when the handler reads it (so the handler sets the order errors come in). */
type Args<P extends ParamSpecs> = { readonly [K in keyof P]: ParamValue<P[K]> };

/** The request a handler runs for: the raw params go to delegates (mycelium, updater) as they came. */
interface Call {
  api: ControlApi;
  method: string;
  params: unknown;
}

/** What a handler returns to open a log subscription instead of a result (the socket server streams it). */
export class LogSubscription {
  constructor(readonly name: string | undefined) {}
}

interface MethodDef<P extends ParamSpecs> {
  description: string;
  params: P;
  result: { name: string; schema: Schema };
  run(args: Args<P>, call: Call): unknown;
}

/** A row of the table, as the dispatcher and the document use it. */
export interface RpcMethod {
  name: string;
  description: string;
  params: readonly (ParamSpec & { name: string })[];
  result: { name: string; schema: Schema };
  /** Runs the method: its result, or a {@link LogSubscription}; throws a controlError for an error reply. */
  call(api: ControlApi, params: unknown, method: string): unknown;
}

/**
 * Pure: parameter `name` (at `index` when params are positional) checked
 * against its spec, with zinit's error texts.
 */
export function readParam(params: unknown, index: number, name: string, spec: ParamSpec): unknown {
  let v: unknown;
  if (Array.isArray(params)) v = params[index];
  else if (params && typeof params === "object") v = (params as Record<string, unknown>)[name];
  if (spec.type === "object") {
    if (!v || typeof v !== "object" || Array.isArray(v))
      throw controlError(RPC.INVALID_PARAMS, `parameter "${name}" must be an object`);
    return v;
  }
  if (v === undefined || v === null) {
    if (!spec.required) return undefined;
    throw controlError(RPC.INVALID_PARAMS, `missing parameter "${name}"`);
  }
  if (typeof v !== "string")
    throw controlError(RPC.INVALID_PARAMS, `parameter "${name}" must be a string`);
  return v;
}

/** The handler's view of `params`: one getter per declared parameter. */
function argsOf<P extends ParamSpecs>(params: unknown, specs: P): Args<P> {
  const args = {};
  Object.entries(specs).forEach(([name, spec], index) => {
    Object.defineProperty(args, name, { get: () => readParam(params, index, name, spec) });
  });
  return args as Args<P>;
}

function define<P extends ParamSpecs>(d: MethodDef<P>): Omit<RpcMethod, "name"> {
  return {
    description: d.description,
    params: Object.entries(d.params).map(([name, spec]) => ({ name, ...spec })),
    result: d.result,
    call: (api, params, method) => d.run(argsOf(params, d.params), { api, method, params }),
  };
}

export const methodNotFound = (method: string) =>
  controlError(RPC.METHOD_NOT_FOUND, `Method not found: ${method}`);

/** Runs an action of the API, then answers null (zinit's result for actions). */
async function done(action: Promise<void> | void): Promise<null> {
  await action;
  return null;
}

/** mycelium_* / update_* go to their part, or are not found when the VM has no such part. */
function delegate(c: Call, part: "mycelium" | "update"): Promise<unknown> {
  if (part === "mycelium" && c.api.mycelium) return c.api.mycelium(c.method, c.params);
  if (part === "update" && c.api.update) return c.api.update(c.method, c.params);
  throw methodNotFound(c.method);
}

const NAME = required("the service's name (its file in the services directory, without .yaml)");
const NONE = { name: "result", schema: { type: "null" } };
const STATE = { type: "string", description: "zinit's state: Running, Success, Error(…), …" };

const TABLE: Record<string, Omit<RpcMethod, "name">> = {
  service_list: define({
    description: "Every monitored service and its state.",
    params: {},
    result: { name: "services", schema: { type: "object", additionalProperties: STATE } },
    run: (_, { api }) => api.list(),
  }),
  service_status: define({
    description: "A service's pid, state, target and the states of its dependencies.",
    params: { name: NAME },
    result: {
      name: "status",
      schema: {
        type: "object",
        properties: {
          name: { type: "string" },
          pid: { type: "integer" },
          state: STATE,
          target: { type: "string", enum: ["Up", "Down"] },
          after: { type: "object", additionalProperties: { type: "string" } },
        },
      },
    },
    run: (a, { api }) => api.status(a.name),
  }),
  service_start: define({
    description: "Sets a service's target to Up and starts it.",
    params: { name: NAME },
    result: NONE,
    run: (a, { api }) => done(api.start(a.name)),
  }),
  service_stop: define({
    description: "Sets a service's target to Down and stops it.",
    params: { name: NAME },
    result: NONE,
    run: (a, { api }) => done(api.stop(a.name)),
  }),
  service_restart: define({
    description: "Stops a service, then starts it again.",
    params: { name: NAME },
    result: NONE,
    run: (a, { api }) => done(api.restart(a.name)),
  }),
  service_monitor: define({
    description: "Loads a service's file and starts supervising it.",
    params: { name: NAME },
    result: NONE,
    run: (a, { api }) => done(api.monitor(a.name)),
  }),
  service_forget: define({
    description: "Stops supervising a service that is down.",
    params: { name: NAME },
    result: NONE,
    run: (a, { api }) => done(api.forget(a.name)),
  }),
  service_kill: define({
    description: "Sends a signal to a service's process.",
    params: { name: NAME, signal: required("the signal's name, e.g. SIGTERM") },
    result: NONE,
    run: (a, { api }) => done(api.kill(a.name, a.signal)),
  }),
  system_shutdown: define({
    description: "Stops every service and powers the machine off.",
    params: {},
    result: NONE,
    run: (_, { api }) => done(api.shutdown()),
  }),
  system_reboot: define({
    description: "Stops every service and reboots the machine.",
    params: {},
    result: NONE,
    run: (_, { api }) => done(api.reboot()),
  }),
  service_create: define({
    description: "Writes a new service file (it is not monitored until service_monitor).",
    params: { name: NAME, content: object("the service file's fields (exec, after, oneshot, …)") },
    result: { name: "message", schema: { type: "string" } },
    run: (a, { api }) => {
      // content is checked before name, as zinit-compatible clients have always been answered.
      const content = a.content as ServiceSpecInput;
      return api.create(a.name, content);
    },
  }),
  service_delete: define({
    description: "Deletes a service's file (the service must not be up).",
    params: { name: NAME },
    result: { name: "message", schema: { type: "string" } },
    run: (a, { api }) => api.remove(a.name),
  }),
  service_get: define({
    description: "A service's file, as written.",
    params: { name: NAME },
    result: { name: "content", schema: { type: "object" } },
    run: (a, { api }) => api.get(a.name),
  }),
  service_stats: define({
    description: "A service's memory and CPU use and its child processes.",
    params: { name: NAME },
    result: {
      name: "stats",
      schema: {
        type: "object",
        properties: {
          name: { type: "string" },
          pid: { type: "integer" },
          memory_usage: { type: "integer" },
          cpu_usage: { type: "integer" },
          children: { type: "array", items: { type: "object" } },
        },
      },
    },
    run: (a, { api }) => api.stats(a.name),
  }),
  stream_currentLogs: define({
    description: "The log lines held (of one service, or all), newest last, within 1 MiB.",
    params: { name: optional("only this service's lines") },
    result: { name: "lines", schema: { type: "array", items: { type: "string" } } },
    run: (a, { api }) => boundedLogs(api.logs(a.name)),
  }),
  stream_subscribeLogs: define({
    description:
      "Subscribes to new log lines: the result is a subscription id, then each line comes as a stream_subscribeLogs notification.",
    params: { name: optional("only this service's lines") },
    result: { name: "subscription", schema: { type: "integer" } },
    run: (a) => new LogSubscription(a.name),
  }),
  mycelium_status: define({
    description: "mycelium's state, address and subnet.",
    params: {},
    result: { name: "status", schema: { type: "object" } },
    run: (_, c) => delegate(c, "mycelium"),
  }),
  mycelium_peers: define({
    description: "mycelium's peers, as its admin API lists them.",
    params: {},
    result: { name: "peers", schema: { type: "array" } },
    run: (_, c) => delegate(c, "mycelium"),
  }),
  mycelium_addPeer: define({
    description: "Adds a mycelium peer.",
    params: { endpoint: required("tcp://host:port or quic://[ipv6]:port") },
    result: NONE,
    run: (_, c) => delegate(c, "mycelium"),
  }),
  mycelium_removePeer: define({
    description: "Removes a mycelium peer.",
    params: { endpoint: required("the peer's URI, as mycelium_peers lists it") },
    result: NONE,
    run: (_, c) => delegate(c, "mycelium"),
  }),
  update_check: define({
    description: "Fetches and verifies the update manifest; reports what would change.",
    params: {},
    result: { name: "result", schema: { type: "object" } },
    run: (_, c) => delegate(c, "update"),
  }),
  update_apply: define({
    description: "Fetches, verifies and installs the update, restarting what changed.",
    params: {},
    result: { name: "result", schema: { type: "object" } },
    run: (_, c) => delegate(c, "update"),
  }),
};

/** Every method, by name (a Map: a request's method is never looked up on an object's prototype). */
export const METHODS: ReadonlyMap<string, RpcMethod> = new Map(
  Object.entries(TABLE).map(([name, m]) => [name, { name, ...m }]),
);

/**
 * A method the table does not list. A name in a delegated namespace
 * (mycelium_*, update_*) still goes to its delegate when the VM has it,
 * which answers "Method not found" in its own words (the updater: "no
 * [update] section in vm.toml"), as it always did; anything else is not found.
 */
export function callUnlisted(api: ControlApi, method: string, params: unknown): Promise<unknown> {
  if (method.startsWith("mycelium_") && api.mycelium) return api.mycelium(method, params);
  if (method.startsWith("update_") && api.update) return api.update(method, params);
  throw methodNotFound(method);
}

/**
 * The OpenRPC document rpc.discover returns, made from the table. rpc.discover
 * itself is not listed: the OpenRPC specification reserves it for this.
 */
export function openrpcDocument(): unknown {
  return {
    openrpc: "1.2.6",
    info: { title: "Zinit JSON-RPC API (hero-init)", version: "1.0.0" },
    methods: [...METHODS.values()].map((m) => ({
      name: m.name,
      description: m.description,
      paramStructure: "either",
      params: m.params.map((p) => ({
        name: p.name,
        description: p.description,
        required: p.required,
        schema: { type: p.type },
      })),
      result: m.result,
    })),
  };
}
