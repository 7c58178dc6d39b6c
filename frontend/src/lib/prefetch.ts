/**
 * Data a page will need, requested while its code is still loading: the router starts
 * the requests when it resolves a route, and the page takes the answers when it mounts.
 * An answer not taken within `MAX_AGE_MS` is dropped, so a page never shows stale data.
 */
const MAX_AGE_MS = 5000

const cache = new Map<string, { promise: Promise<unknown>; at: number }>()

/** Drop answers nobody took in time (a page left before its charts asked). */
function prune(): void {
  const now = Date.now()
  for (const [key, entry] of cache) if (now - entry.at >= MAX_AGE_MS) cache.delete(key)
}

/** Start `load` under `key` unless a fresh request for it is already waiting. */
export function prefetch<T>(key: string, load: () => Promise<T>): Promise<T> {
  prune()
  const entry = cache.get(key)
  if (entry && Date.now() - entry.at < MAX_AGE_MS) return entry.promise as Promise<T>
  const promise = load()
  promise.catch(() => cache.delete(key))
  cache.set(key, { promise, at: Date.now() })
  return promise
}

/** The waiting request under `key`, once (later calls fetch afresh), or null. */
export function takePrefetched<T>(key: string): Promise<T> | null {
  const entry = cache.get(key)
  cache.delete(key)
  if (!entry || Date.now() - entry.at >= MAX_AGE_MS) return null
  return entry.promise as Promise<T>
}
