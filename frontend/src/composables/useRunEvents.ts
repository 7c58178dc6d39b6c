import { onScopeDispose, ref, watch, type Ref } from 'vue'
import { connection } from '../api/client'
import { readEventStream } from '../api/events'
import type { RunChange } from '../api/types'
import { isAbort } from './useResource'
import { useDocumentVisible } from './useDocumentVisible'

export interface RunEvents {
  /** Whether the stream is connected. */
  live: Ref<boolean>
}

/**
 * Follow the server's stream of run changes while the tab is visible. Changes are
 * collected and handed to `onChanges` at most once per `interval` milliseconds, with
 * `reset` true when the server could not tell what changed (reload what is shown); the
 * stream reconnects from its last cursor when the server ends it, the connection
 * drops or the tab becomes visible again, and closes when the owner unmounts.
 */
export function useRunEvents(
  onChanges: (changes: RunChange[], reset: boolean) => void,
  interval = 1000,
): RunEvents {
  const live = ref(false)
  const visible = useDocumentVisible()
  let cursor: string | null = null
  let controller: AbortController | null = null
  let pending = new Map<string, RunChange>()
  let pendingReset = false
  let timer: ReturnType<typeof setTimeout> | null = null
  let stopped = false

  const deliver = () => {
    timer = null
    if (!pending.size && !pendingReset) return
    const changes = [...pending.values()]
    const reset = pendingReset
    pending = new Map()
    pendingReset = false
    onChanges(changes, reset)
  }

  const collect = (changes: RunChange[], reset: boolean) => {
    for (const change of changes) pending.set(change.id, change)
    pendingReset ||= reset
    if (timer === null) timer = setTimeout(deliver, interval)
  }

  async function loop(signal: AbortSignal): Promise<void> {
    let failures = 0
    while (!signal.aborted) {
      try {
        cursor = await readEventStream(
          cursor,
          (event) => collect(event.runs, event.reset),
          signal,
          () => (live.value = true),
        )
        failures = 0
      } catch (error) {
        if (isAbort(error) || signal.aborted) break
        failures += 1
      }
      live.value = false
      if (connection.authRequired) break
      const wait = failures ? Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)) : 100
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
    live.value = false
  }

  const start = () => {
    if (stopped || controller) return
    controller = new AbortController()
    void loop(controller.signal)
  }

  const stop = () => {
    controller?.abort()
    controller = null
    live.value = false
  }

  watch(
    [visible, () => connection.epoch],
    ([isVisible]) => {
      stop()
      if (isVisible) start()
    },
    { immediate: true },
  )

  onScopeDispose(() => {
    stopped = true
    stop()
    if (timer !== null) clearTimeout(timer)
  })

  return { live }
}
