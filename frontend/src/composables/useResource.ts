import {
  onScopeDispose,
  ref,
  shallowRef,
  watch,
  type Ref,
  type ShallowRef,
  type WatchSource,
} from 'vue'
import { ApiError, connection } from '../api/client'

export type Status = 'idle' | 'loading' | 'ready' | 'error'

export interface Resource<T> {
  data: ShallowRef<T | null>
  status: Ref<Status>
  error: ShallowRef<ApiError | null>
  /** Fetch again; an earlier request still in flight is aborted. */
  reload: () => Promise<void>
}

/** Turn any thrown value into an ApiError for display. */
export function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new ApiError(0, 'client_error', message)
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError'
}

/**
 * Data from the API that is fetched again whenever one of `sources` changes or the
 * app reloads (server back, new token). With `keepData`, the data stays on screen while
 * the same sources are read again, and is cleared when they change. The request in
 * flight is aborted when a newer one starts and when the owning component unmounts.
 */
export function useResource<T>(
  fetcher: (signal: AbortSignal) => Promise<T>,
  sources: WatchSource[] = [],
  options: { keepData?: boolean } = {},
): Resource<T> {
  const data = shallowRef<T | null>(null)
  const status = ref<Status>('idle')
  const error = shallowRef<ApiError | null>(null)
  let controller: AbortController | null = null

  async function reload(): Promise<void> {
    controller?.abort()
    const current = new AbortController()
    controller = current
    status.value = 'loading'
    if (!options.keepData) data.value = null
    try {
      const value = await fetcher(current.signal)
      if (current.signal.aborted) return
      data.value = value
      error.value = null
      status.value = 'ready'
    } catch (caught) {
      if (isAbort(caught) || current.signal.aborted) return
      error.value = asApiError(caught)
      status.value = 'error'
    }
  }

  // Data kept across reloads belongs to the sources it was read for: when they change
  // (another run), it is cleared rather than shown as the new one's while that loads.
  watch(
    sources,
    () => {
      data.value = null
      void reload()
    },
    { immediate: true },
  )
  watch(
    () => connection.epoch,
    () => void reload(),
  )
  onScopeDispose(() => controller?.abort())

  return { data, status, error, reload }
}
