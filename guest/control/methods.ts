/**
 * The JSON-RPC methods hero-init serves, as one table: each method's
 * description, zinit's action (the "<action>: " of its error messages),
 * parameters (name, JSON type, required; by position or by name, read as
 * zinit's server reads them: params.ts), result, error codes and handler.
 * The dispatcher (jsonrpc.ts) and the OpenRPC document rpc.discover
 * returns are both made from it, so a method cannot be served without
 * being documented, nor documented without being served. zinit's methods
 * come first, in the order of zinit's openrpc.json (names, parameters,
 * result names, codes and texts: zinit's clients talk to this socket);
 * hero-init's own follow (service_restart, stream_unsubscribeLogs, which
 * zinit serves but does not document, mycelium_*, update_*). None may
 * change shape: they are a wire protocol.
 */
import type { ServiceSpecInput } from "../../lib/service-spec.ts";
import { VERSION } from "../../lib/version.ts";
import { type ParamSpec, type ParamSpecs, parseParams } from "./params.ts";
import { boundedLogs, type ControlApi, controlError, RPC } from "./protocol.ts";

/** A JSON Schema, as OpenRPC embeds it. */
type Schema = Record<string, unknown>;

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

/** A handler's parameters, read and checked before it runs. */
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

/** What stream_unsubscribeLogs returns: the connection ends the subscription, if it has it (result true/false). */
export class LogUnsubscription {
  constructor(readonly id: unknown) {}
}

/** A method's result, as the document names it. */
interface ResultSpec {
  name: string;
  schema: Schema;
}

interface MethodDef<P extends ParamSpecs> {
  description: string;
  /** zinit's action, prefixed to its error messages ("getting status: …"); none for hero-init's delegates. */
  action?: string;
  params: P;
  /** The handler reads the raw params itself (delegates, unsubscribe): they are documented, not checked here. */
  rawParams?: true;
  result: ResultSpec;
  /** The codes its errors carry besides the protocol's own (documented). */
  errors?: readonly number[];
  run(args: Args<P>, call: Call): unknown;
}

/** A row of the table, as the dispatcher and the document use it. */
export interface RpcMethod {
  name: string;
  description: string;
  action: string | undefined;
  params: readonly (ParamSpec & { name: string })[];
  result: ResultSpec;
  errors: readonly number[];
  /** Runs the method: its result, a {@link LogSubscription} or {@link LogUnsubscription}; throws a controlError for an error reply. */
  call(api: ControlApi, params: unknown, method: string): unknown;
}

function define<P extends ParamSpecs>(d: MethodDef<P>): Omit<RpcMethod, "name"> {
  return {
    description: d.description,
    action: d.action,
    params: Object.entries(d.params).map(([name, spec]) => ({ name, ...spec })),
    result: d.result,
    errors: d.errors ?? [],
    call: (api, params, method) => {
      const args = (d.rawParams ? {} : parseParams(params, d.params)) as Args<P>;
      return d.run(args, { api, method, params });
    },
  };
}

/** jsonrpsee's answer to a method it does not have. */
export const methodNotFound = (_method?: string) =>
  controlError(RPC.METHOD_NOT_FOUND, "Method not found");

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
const STATE = { type: "string", description: "zinit's state: Running, Success, Error(…), …" };
const none = (name: string): ResultSpec => ({ name, schema: { type: "null" } });
const { SERVICE_NOT_FOUND: NOT_FOUND, SERVICE_IS_UP: IS_UP, SERVICE_IS_DOWN: IS_DOWN } = RPC;
const USAGE = {
  type: "object",
  properties: {
    pid: { type: "integer" },
    memory_usage: { type: "integer", description: "resident memory, bytes" },
    cpu_usage: { type: "number", description: "percent of one CPU over the last half second" },
  },
};

/** zinit's service_ and system_ methods (zinit's order), then stream_. */
const ZINIT: Record<string, Omit<RpcMethod, "name">> = {
  service_list: define({
    description: "Every monitored service and its state.",
    action: "listing services",
    params: {},
    result: { name: "ServiceList", schema: { type: "object", additionalProperties: STATE } },
    run: (_, { api }) => api.list(),
  }),
  service_status: define({
    description: "A service's pid, state, target and the states of its dependencies.",
    action: "getting status",
    params: { name: NAME },
    errors: [NOT_FOUND],
    result: {
      name: "ServiceStatus",
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
    action: "starting service",
    params: { name: NAME },
    errors: [NOT_FOUND, RPC.SHUTTING_DOWN],
    result: none("StartResult"),
    run: (a, { api }) => done(api.start(a.name)),
  }),
  service_stop: define({
    description:
      "Sets a service's target to Down and stops it: answers once its processes are gone.",
    action: "stopping service",
    params: { name: NAME },
    errors: [NOT_FOUND, IS_DOWN],
    result: none("StopResult"),
    run: (a, { api }) => done(api.stop(a.name)),
  }),
  service_monitor: define({
    description: "Loads a service's file and starts supervising it.",
    action: "monitoring service",
    params: { name: NAME },
    errors: [RPC.INVALID_PARAMS, RPC.SERVICE_ALREADY_MONITORED, RPC.CONFIG_ERROR],
    result: none("MonitorResult"),
    run: (a, { api }) => done(api.monitor(a.name)),
  }),
  service_forget: define({
    description: "Stops supervising a service that is down.",
    action: "forgetting service",
    params: { name: NAME },
    errors: [NOT_FOUND, IS_UP],
    result: none("ForgetResult"),
    run: (a, { api }) => done(api.forget(a.name)),
  }),
  service_kill: define({
    description: "Sends a signal to a service's processes; its target stays Up.",
    action: "sending signal",
    params: { name: NAME, signal: required("the signal's name, e.g. SIGTERM") },
    errors: [NOT_FOUND, IS_DOWN, RPC.INVALID_SIGNAL],
    result: none("KillResult"),
    run: (a, { api }) => done(api.kill(a.name, a.signal)),
  }),
  system_shutdown: define({
    description: "Stops every service and powers the machine off.",
    action: "system shutdown",
    params: {},
    errors: [RPC.SHUTTING_DOWN],
    result: none("ShutdownResult"),
    run: (_, { api }) => done(api.shutdown()),
  }),
  system_reboot: define({
    description: "Stops every service and reboots the machine.",
    action: "system reboot",
    params: {},
    errors: [RPC.SHUTTING_DOWN],
    result: none("RebootResult"),
    run: (_, { api }) => done(api.reboot()),
  }),
  service_create: define({
    description:
      "Writes a new service file, checked as the loader reads it (it is not monitored until service_monitor).",
    action: "creating service",
    params: { name: NAME, content: object("the service file's fields (exec, after, oneshot, …)") },
    errors: [
      RPC.INVALID_PARAMS,
      RPC.SERVICE_ALREADY_EXISTS,
      RPC.CONFIG_ERROR,
      RPC.SERVICE_FILE_ERROR,
    ],
    result: { name: "CreateServiceResult", schema: { type: "string" } },
    run: (a, { api }) => api.create(a.name, a.content as ServiceSpecInput),
  }),
  service_delete: define({
    description: "Deletes a service's file (the service must not be up).",
    action: "deleting service",
    params: { name: NAME },
    errors: [RPC.INVALID_PARAMS, NOT_FOUND, IS_UP, RPC.SERVICE_FILE_ERROR],
    result: { name: "DeleteServiceResult", schema: { type: "string" } },
    run: (a, { api }) => api.remove(a.name),
  }),
  service_get: define({
    description: "A service's file, as written.",
    action: "getting service",
    params: { name: NAME },
    errors: [RPC.INVALID_PARAMS, NOT_FOUND, RPC.CONFIG_ERROR, RPC.SERVICE_FILE_ERROR],
    result: { name: "GetServiceResult", schema: { type: "object" } },
    run: (a, { api }) => api.get(a.name),
  }),
  service_stats: define({
    description:
      "A running service's memory (RSS, bytes) and CPU use (percent), and those of its other processes.",
    action: "collecting stats",
    params: { name: NAME },
    errors: [NOT_FOUND, IS_DOWN],
    result: {
      name: "ServiceStats",
      schema: {
        type: "object",
        properties: {
          name: { type: "string" },
          ...USAGE.properties,
          children: { type: "array", items: USAGE },
        },
      },
    },
    run: (a, { api }) => api.stats(a.name),
  }),
  system_start_http_server: define({
    description:
      "zinit's HTTP proxy of this API: not provided (hero-init serves its status UI and API on :9999); always an error.",
    action: "starting http server",
    params: { address: required("host:port to listen on") },
    errors: [RPC.INVALID_PARAMS, RPC.INTERNAL],
    result: { name: "StartHttpServerResult", schema: { type: "string" } },
    run: () => {
      throw controlError(
        RPC.INTERNAL,
        "not provided by hero-init: an unauthenticated HTTP copy of this socket is not opened (the status UI and its API listen on :9999)",
      );
    },
  }),
  system_stop_http_server: define({
    description: "Stops the HTTP proxy: there is none (see system_start_http_server).",
    action: "stopping http server",
    params: {},
    errors: [RPC.INVALID_PARAMS, RPC.INTERNAL],
    result: none("StopHttpServerResult"),
    run: () => {
      throw controlError(RPC.INTERNAL, "No HTTP/RPC server is currently running");
    },
  }),
  stream_currentLogs: define({
    description: "The log lines held (of one service, or all), newest last, within 1 MiB.",
    params: { name: optional("only this service's lines") },
    result: { name: "LogsResult", schema: { type: "array", items: { type: "string" } } },
    run: (a, { api }) => boundedLogs(api.logs(a.name)),
  }),
  stream_subscribeLogs: define({
    description:
      "Subscribes to new log lines: the result is a subscription id, then each line comes as a stream_subscribeLogs notification.",
    params: { name: optional("only this service's lines") },
    result: { name: "LogSubscription", schema: { type: "integer" } },
    // zinit's server names this parameter `filter` (its openrpc.json: `name`): both are read.
    rawParams: true,
    run: (_, { params }) => {
      const p = params as Record<string, unknown> | unknown[] | null | undefined;
      const v = Array.isArray(p) ? p[0] : (p?.name ?? p?.filter);
      return new LogSubscription(typeof v === "string" ? v : undefined);
    },
  }),
};

/** hero-init's own methods, after zinit's. */
const HERO: Record<string, Omit<RpcMethod, "name">> = {
  service_restart: define({
    description: "Stops a service (waiting for its processes to be gone), then starts it.",
    action: "restarting service",
    params: { name: NAME },
    errors: [NOT_FOUND, RPC.SHUTTING_DOWN],
    result: none("RestartResult"),
    run: (a, { api }) => done(api.restart(a.name)),
  }),
  stream_unsubscribeLogs: define({
    description:
      "Ends a stream_subscribeLogs subscription of this connection; true if it had it (zinit's server has it, its document does not).",
    params: { subscription: required("the id stream_subscribeLogs answered") },
    rawParams: true,
    result: { name: "Unsubscribed", schema: { type: "boolean" } },
    run: (_, { params }) => new LogUnsubscription(Array.isArray(params) ? params[0] : undefined),
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
    rawParams: true,
    result: none("result"),
    run: (_, c) => delegate(c, "mycelium"),
  }),
  mycelium_removePeer: define({
    description: "Removes a mycelium peer.",
    params: { endpoint: required("the peer's URI, as mycelium_peers lists it") },
    rawParams: true,
    result: none("result"),
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
  Object.entries({ ...ZINIT, ...HERO }).map(([name, m]) => [name, { name, ...m }]),
);

/** Names of zinit's methods (the rest are hero-init's). */
export const ZINIT_METHODS: readonly string[] = ["rpc.discover", ...Object.keys(ZINIT)];

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

/** zinit's name of each of its codes, as the document lists a method's errors. */
const ERROR_NAMES: Readonly<Record<number, string>> = {
  [RPC.INVALID_PARAMS]: "Invalid params",
  [RPC.INTERNAL]: "Internal error",
  [RPC.SERVICE_NOT_FOUND]: "Service not found",
  [RPC.SERVICE_ALREADY_MONITORED]: "Service already monitored",
  [RPC.SERVICE_IS_UP]: "Service is up",
  [RPC.SERVICE_IS_DOWN]: "Service is down",
  [RPC.INVALID_SIGNAL]: "Invalid signal",
  [RPC.CONFIG_ERROR]: "Config error",
  [RPC.SHUTTING_DOWN]: "Shutting down",
  [RPC.SERVICE_ALREADY_EXISTS]: "Service already exists",
  [RPC.SERVICE_FILE_ERROR]: "Service file error",
};

/** One method's entry in the document. */
function documented(m: RpcMethod) {
  return {
    name: m.name,
    description: m.description,
    params: m.params.map((p) => ({
      name: p.name,
      description: p.description,
      required: p.required,
      schema: { type: p.type },
    })),
    result: m.result,
    ...(m.errors.length
      ? { errors: m.errors.map((code) => ({ code, message: ERROR_NAMES[code] ?? "" })) }
      : {}),
  };
}

/**
 * The OpenRPC document rpc.discover returns (as zinit does, the document's
 * JSON text as the result string), made from the table: rpc.discover, then
 * zinit's methods in zinit's order, then hero-init's.
 */
export function openrpcDocument(): unknown {
  return {
    openrpc: "1.2.6",
    info: {
      version: "1.0.0",
      title: "Zinit JSON-RPC API",
      description: `zinit's control API as hero-init ${VERSION} serves it, with hero-init's own methods after zinit's`,
    },
    servers: [{ name: "Unix Socket", url: "unix:///tmp/zinit.sock" }],
    methods: [
      {
        name: "rpc.discover",
        description: "This document, as a JSON string.",
        params: [],
        result: { name: "OpenRPCSpec", schema: { type: "string" } },
      },
      ...[...METHODS.values()].map(documented),
    ],
  };
}
