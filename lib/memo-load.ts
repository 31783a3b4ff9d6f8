/**
 * One load shared by every caller (a lazy `import()`, an app built at its
 * first request): the first call starts it, the others get the same
 * promise. A load that fails is forgotten, so the next call tries again: a
 * missing chunk or a passing error must not turn a feature off until the
 * next boot. Pure: no I/O of its own.
 */
export function memoLoad<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    if (pending) return pending;
    const mine = (async () => load())();
    pending = mine;
    mine.catch(() => {
      if (pending === mine) pending = null;
    });
    return mine;
  };
}
