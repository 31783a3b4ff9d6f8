/**
 * One QMP command over QEMU's unix socket: greeting, qmp_capabilities, the
 * command, its return (or error). Used by `hero-init vm run` (power button
 * on Ctrl-C, quit on a second one: host/vm-run.ts) and the test
 * harness.
 */

/** Runs one QMP command; rejects on a QMP error, a closed socket or after 10 s. */
export async function qmpCommand(socket: string, command: string, args?: object): Promise<unknown> {
  let buf = "";
  let sent = false;
  let resolveFn: (v: unknown) => void = () => {};
  let rejectFn: (e: Error) => void = () => {};
  const result = new Promise<unknown>((res, rej) => {
    resolveFn = res;
    rejectFn = rej;
  });
  const sock = await Bun.connect({
    unix: socket,
    socket: {
      data(s, d) {
        buf += d.toString();
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          let msg: Record<string, unknown> & { error?: { desc?: string } };
          try {
            msg = JSON.parse(buf.slice(0, nl));
          } catch {
            rejectFn(new Error(`qmp ${command}: not QMP: ${buf.slice(0, Math.min(nl, 80))}`));
            s.end();
            return;
          }
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          if (msg.QMP) s.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
          else if ("return" in msg && !sent) {
            sent = true;
            s.write(
              `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`,
            );
          } else if ("return" in msg) resolveFn(msg.return);
          else if (msg.error) rejectFn(new Error(`qmp ${command}: ${msg.error.desc}`));
        }
      },
      close() {
        rejectFn(new Error(`qmp ${command}: connection closed`));
      },
    },
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      result,
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`qmp ${command}: timeout`)), 10_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    sock.end();
  }
}
