import { onScopeDispose, watch, type Ref } from 'vue'
import { api } from '../api/client'
import type { Artifact } from '../api/types'
import { useResource } from './useResource'

const ARTIFACTS_INTERVAL = 5000
/** Object URLs kept per page before the least recently used are revoked. */
export const MAX_BLOB_URLS = 100
const SHA256 = /^[0-9a-f]{64}$/

/**
 * A run's artifacts, oldest first, read again when `tick` changes (a change to the run),
 * at most every 5 s, as the notes are.
 */
export function useArtifacts(runId: Ref<string>, tick: Ref<number>) {
  const list = useResource((signal) => api.artifacts(runId.value, {}, signal), [runId], {
    keepData: true,
  })

  let last = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const refresh = () => {
    timer = null
    last = Date.now()
    void list.reload()
  }
  watch(tick, () => {
    if (timer !== null) return
    timer = setTimeout(refresh, Math.max(0, last + ARTIFACTS_INTERVAL - Date.now()))
  })
  onScopeDispose(() => {
    if (timer !== null) clearTimeout(timer)
  })

  return { artifacts: list.data, status: list.status, error: list.error, reload: list.reload }
}

export interface ImageSeries {
  name: string
  images: Artifact[]
}

/**
 * A run's pictures grouped by name (names sorted), each series by step then time.
 * Pictures stored with a note are shown in the note, so they are left out.
 */
export function imageSeries(artifacts: readonly Artifact[] | null): ImageSeries[] {
  const byName = new Map<string, Artifact[]>()
  for (const artifact of artifacts ?? []) {
    if (artifact.kind !== 'image' || artifact.meta?.note === true) continue
    let images = byName.get(artifact.name)
    if (!images) byName.set(artifact.name, (images = []))
    images.push(artifact)
  }
  const step = (a: Artifact) => (a.step === null ? -1 : a.step)
  return [...byName.keys()].sort().map((name) => ({
    name,
    images: byName.get(name)!.sort((a, b) => step(a) - step(b) || a.created_at - b.created_at),
  }))
}

/**
 * Object URLs for a run's blobs (pictures), fetched with the dashboard's token. URLs are
 * cached, the least recently used revoked past `limit`, and all revoked (and requests
 * aborted) when the owning component unmounts.
 */
export function useBlobUrls(limit = MAX_BLOB_URLS) {
  const cache = new Map<string, Promise<string>>()
  const controller = new AbortController()
  const revoke = (promise: Promise<string>) =>
    void promise.then(
      (url) => URL.revokeObjectURL(url),
      () => undefined,
    )

  function url(runId: string, sha256: string): Promise<string> {
    if (!SHA256.test(sha256)) return Promise.reject(new Error(`not a sha256: ${sha256}`))
    const key = `${runId}/${sha256}`
    let found = cache.get(key)
    if (found) {
      cache.delete(key)
      cache.set(key, found)
      return found
    }
    found = api.blob(runId, sha256, controller.signal).then((blob) => URL.createObjectURL(blob))
    const pending = found
    // A failed fetch is not cached: the next call tries again.
    pending.catch(() => {
      if (cache.get(key) === pending) cache.delete(key)
    })
    cache.set(key, found)
    while (cache.size > limit) {
      const [oldest, promise] = cache.entries().next().value as [string, Promise<string>]
      cache.delete(oldest)
      revoke(promise)
    }
    return found
  }

  onScopeDispose(() => {
    controller.abort()
    for (const promise of cache.values()) revoke(promise)
    cache.clear()
  })

  return { url }
}

/** Save an artifact as a file through the browser (its bytes fetched with the token). */
export async function downloadArtifact(artifact: Artifact): Promise<void> {
  const folder = artifact.kind === 'folder'
  const blob = folder
    ? await api.artifactArchive(artifact.run_id, artifact.id)
    : await api.artifactContent(artifact.run_id, artifact.id)
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = folder ? `${artifact.name}.tar` : artifact.name
  document.body.appendChild(link)
  link.click()
  link.remove()
  // The browser has read the URL once the download started.
  setTimeout(() => URL.revokeObjectURL(url), 30_000)
}

/** A size in bytes for people: 0 B, 999 B, 1.5 kB, 12 MB, 3.2 GB. */
export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit += 1
  }
  if (unit === 0) return `${value} B`
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}
