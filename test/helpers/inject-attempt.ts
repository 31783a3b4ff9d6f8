/** An injection that is expected to be refused: the error it threw, or null when it went through. */
import { type InjectOptions, inject } from "../../host/inject.ts";

export async function attempt(o: InjectOptions): Promise<unknown> {
  try {
    await inject(o);
    return null;
  } catch (e) {
    return e;
  }
}
