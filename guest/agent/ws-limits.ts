/**
 * The exec WebSocket's Bun.serve settings, apart from exec.ts so PID 1 can
 * bind the agent before loading its code (guest/pid1/agent.ts).
 */
export const WS_LIMITS = {
  /** Largest message (a keystroke batch, a resize): 1 MiB. */
  maxPayloadLength: 1024 * 1024,
  /** An interactive session may be idle for hours: no idle timeout. */
  idleTimeout: 0,
} as const;
