/**
 * What to do with sshd once an environment's access section is applied
 * (pure; update/access.ts decides `wanted` and `changed`). One policy for
 * the VM's updater (guest/pid1/updater.ts: a zinit service or, after the
 * systemd hand-off, the image's ssh unit) and the node's (cli/update.ts:
 * systemd or zinit), which only differ in how a step is carried out.
 *
 * sshd reads its configuration when it starts and on SIGHUP only, and each
 * connection's child keeps the parent's copy: a changed drop-in needs a
 * reload (SIGHUP, `systemctl reload`), never a restart, which would end the
 * open sessions. A start reads the new file anyway.
 */

/** One step: start (and enable) sshd, stop (and disable) it, or make it read its configuration again. */
export type SshdStep = "start" | "stop" | "reload";

/**
 * Pure: the steps, in order. `running` is what the caller knows of sshd
 * now: true or false, or undefined when it cannot tell (then starting and
 * stopping must be harmless when sshd already is in that state, as
 * `systemctl enable --now` and zinit's start and stop are).
 */
export function sshdSteps(wanted: boolean, changed: boolean, running?: boolean): SshdStep[] {
  if (!wanted) return running === false ? [] : ["stop"];
  if (running === false) return ["start"];
  if (running === true) return changed ? ["reload"] : [];
  return changed ? ["start", "reload"] : ["start"];
}
