import { computed, onScopeDispose, ref, shallowRef, watch, type Ref } from 'vue'
import { api, connection, type ApiError, type RunQuery } from '../api/client'
import type { Run, RunChange } from '../api/types'
import { asApiError, isAbort, type Status } from './useResource'

export const PAGE_SIZE = 200
/** Pages kept in memory; the ones farthest from the visible rows are dropped first. */
const MAX_PAGES = 40
/** Up to this many changed runs are fetched one by one; more reload the visible pages. */
const MAX_SINGLE_FETCHES = 20

/**
 * The runs of a query, loaded page by page as the table scrolls. Rows are kept out of
 * Vue's reactivity (a table of 10,000 runs is not deep-watched); `version` changes
 * when any loaded row does.
 */
export function useRunsTable(query: Ref<RunQuery>) {
  const total = ref(0)
  const status = ref<Status>('idle')
  const error = shallowRef<ApiError | null>(null)
  const version = ref(0)
  let pages = new Map<number, Run[]>()
  let inflight = new Map<number, AbortController>()
  let visibleRows = { start: 0, end: PAGE_SIZE }
  let generation = 0

  const pageOf = (row: number) => Math.floor(row / PAGE_SIZE)

  function rowAt(index: number): Run | undefined {
    return pages.get(pageOf(index))?.[index % PAGE_SIZE]
  }

  async function fetchPage(page: number, gen: number): Promise<void> {
    inflight.get(page)?.abort()
    const controller = new AbortController()
    inflight.set(page, controller)
    try {
      const list = await api.listRuns(
        { ...query.value, limit: PAGE_SIZE, offset: page * PAGE_SIZE },
        controller.signal,
      )
      if (gen !== generation) return
      pages.set(page, list.runs)
      total.value = list.total
      error.value = null
      status.value = 'ready'
      evict()
      version.value += 1
    } catch (caught) {
      if (isAbort(caught) || gen !== generation) return
      error.value = asApiError(caught)
      status.value = 'error'
    } finally {
      if (inflight.get(page) === controller) inflight.delete(page)
    }
  }

  function evict(): void {
    if (pages.size <= MAX_PAGES) return
    const centre = pageOf((visibleRows.start + visibleRows.end) / 2)
    const byDistance = [...pages.keys()].sort((a, b) => Math.abs(b - centre) - Math.abs(a - centre))
    for (const page of byDistance.slice(0, pages.size - MAX_PAGES)) pages.delete(page)
  }

  /** Make sure rows [start, end) are loaded or loading. */
  function ensure(start: number, end: number): void {
    visibleRows = { start, end }
    const last = Math.max(pageOf(Math.max(end - 1, 0)), pageOf(start))
    for (let page = pageOf(start); page <= last; page++) {
      if (page * PAGE_SIZE >= Math.max(total.value, 1)) break
      if (!pages.has(page) && !inflight.has(page)) void fetchPage(page, generation)
    }
  }

  /** Start over: the query changed, or the app reloads. */
  function reset(): void {
    generation += 1
    for (const controller of inflight.values()) controller.abort()
    inflight = new Map()
    pages = new Map()
    total.value = 0
    status.value = 'loading'
    version.value += 1
    void fetchPage(0, generation)
  }

  /** Reload the pages under the visible rows, keeping the rows shown until they arrive. */
  function refreshVisible(): void {
    const first = pageOf(visibleRows.start)
    const last = pageOf(Math.max(visibleRows.end - 1, visibleRows.start))
    for (let page = first; page <= last; page++) void fetchPage(page, generation)
    for (const page of [...pages.keys()]) if (page < first || page > last) pages.delete(page)
  }

  /**
   * Bring changed runs up to date: fetch each one, or reload the visible pages when runs
   * came or went, or when the server asks for a reset.
   */
  async function applyChanges(changes: RunChange[], reset = false): Promise<void> {
    const known = new Map<string, [number, number]>()
    for (const [page, runs] of pages) runs.forEach((run, i) => known.set(run.id, [page, i]))
    const structural = changes.some((c) => c.deleted || !known.has(c.id))
    if (reset || structural || changes.length > MAX_SINGLE_FETCHES) {
      refreshVisible()
      return
    }
    const gen = generation
    await Promise.all(
      changes.map(async (change) => {
        try {
          const run = await api.getRun(change.id)
          const at = known.get(change.id)
          const page = at && pages.get(at[0])
          if (gen !== generation || !page || !at) return
          page[at[1]] = { ...run, values: undefined }
          version.value += 1
        } catch {
          // The next change or reload brings the run; a failed refresh is not shown.
        }
      }),
    )
  }

  watch([() => JSON.stringify(query.value), () => connection.epoch], reset, { immediate: true })
  onScopeDispose(() => {
    generation += 1
    for (const controller of inflight.values()) controller.abort()
  })

  const empty = computed(() => status.value === 'ready' && total.value === 0)

  return { total, status, error, version, empty, rowAt, ensure, reset, applyChanges }
}
