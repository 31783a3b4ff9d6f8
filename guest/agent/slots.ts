/**
 * The agent's concurrency limit of execs: HTTP execs and WebSocket sessions
 * share one count, so a client cannot open more by mixing the two.
 */
export class ExecSlots {
  #running = 0;

  constructor(readonly max: number) {}

  /** Execs running now. */
  get running(): number {
    return this.#running;
  }

  /** Takes a slot; false when all are in use (the caller answers 429). */
  take(): boolean {
    if (this.#running >= this.max) return false;
    this.#running++;
    return true;
  }

  /** Gives a slot back; never below zero. */
  release(): void {
    this.#running = Math.max(0, this.#running - 1);
  }

  /** The 429 message. */
  get busyMessage(): string {
    return `too many execs running (limit ${this.max})`;
  }
}
