/** Full-jitter exponential backoff: a random delay in [base, min(max, base * 2^attempt)]. */
export function backoffDelay(attempt: number, baseMs = 200, maxMs = 10_000): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(baseMs + Math.random() * Math.max(0, ceiling - baseMs));
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
