import { markRaw, onScopeDispose, ref, shallowRef, watch, type Ref } from 'vue'
import type { ApiError } from '../api/client'
import { SeriesBuffer, type BufferLimits } from '../lib/seriesBuffer'
import type { SeriesSource } from '../lib/sources'
import { asApiError, isAbort, type Status } from './useResource'

/** Most `after` requests one update makes before it waits for the next tick. */
const MAX_CATCH_UP = 20

/**
 * One chart's points, kept current. The history is loaded when the source changes;
 * each change of `tick` (a new event for the run) fetches only the points after the
 * newest one held, while `active` (chart on screen, tab visible) is true; a tick seen
 * while inactive is caught up when the chart becomes active. `zoom` loads full detail
 * for a step range. Points live in a `SeriesBuffer`, outside Vue's reactivity.
 */
export function useLiveSeries(
  source: Ref<SeriesSource | null>,
  tick: Ref<number>,
  active: Ref<boolean>,
  limits?: BufferLimits,
) {
  const buffer = markRaw(new SeriesBuffer(limits))
  const version = ref(0)
  const status = ref<Status>('idle')
  const error = shallowRef<ApiError | null>(null)
  const zoomed = shallowRef<{ x: number[]; y: number[] } | null>(null)
  let controller: AbortController | null = null
  let updating = false
  let stale = false
  let loaded = false

  const bump = () => {
    version.value += 1
  }

  async function load(): Promise<void> {
    controller?.abort()
    const current = new AbortController()
    controller = current
    loaded = false
    const src = source.value
    if (!src) return
    status.value = 'loading'
    try {
      const history = await src.history(current.signal)
      if (current.signal.aborted) return
      buffer.setHistory(history.x, history.y, history.lastStep)
      loaded = true
      status.value = 'ready'
      error.value = null
      bump()
      if (stale) void update()
    } catch (caught) {
      if (isAbort(caught) || current.signal.aborted) return
      error.value = asApiError(caught)
      status.value = 'error'
    }
  }

  async function update(): Promise<void> {
    const src = source.value
    if (!src || !loaded || updating) {
      stale = true
      return
    }
    updating = true
    stale = false
    const signal = controller?.signal
    try {
      for (let i = 0; i < MAX_CATCH_UP && signal && !signal.aborted; i++) {
        const chunk = await src.after(buffer.lastStep, signal)
        if (signal.aborted) break
        if (buffer.append(chunk.x, chunk.y, chunk.steps)) bump()
        if (!chunk.more) break
      }
    } catch (caught) {
      if (!isAbort(caught)) stale = true
    } finally {
      updating = false
    }
  }

  /** Show the step range [start, stop] in full detail (until `resetZoom`). */
  async function zoom(start: number, stop: number): Promise<void> {
    const src = source.value
    if (!src || !controller) return
    try {
      const detail = await src.range(Math.floor(start), Math.ceil(stop), controller.signal)
      zoomed.value = markRaw(detail)
    } catch (caught) {
      if (!isAbort(caught)) error.value = asApiError(caught)
    }
  }

  function resetZoom(): void {
    zoomed.value = null
  }

  watch(
    source,
    () => {
      zoomed.value = null
      void load()
    },
    { immediate: true },
  )
  watch(tick, () => {
    if (active.value) void update()
    else stale = true
  })
  watch(active, (isActive) => {
    if (isActive && stale) void update()
  })
  onScopeDispose(() => controller?.abort())

  return { buffer, version, status, error, zoomed, zoom, resetZoom, reload: load }
}
