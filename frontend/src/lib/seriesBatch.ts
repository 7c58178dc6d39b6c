/**
 * Coalesces the history requests of many charts into few `/series` requests: charts
 * of one run that ask during the same render share requests of up to `MAX_KEYS` keys each,
 * so a run page with 20 metrics makes 2 requests instead of 20.
 */
import { api } from '../api/client'
import type { Series } from '../api/types'

const MAX_KEYS = 10

interface Pending {
  key: string
  resolve: (series: Series | undefined) => void
  reject: (error: unknown) => void
}

interface Group {
  runId: string
  x: 'step' | 'time'
  buckets: number
  waiting: Pending[]
}

let groups = new Map<string, Group>()
let scheduled = false

function flush(): void {
  scheduled = false
  const current = groups
  groups = new Map()
  for (const group of current.values()) {
    for (let i = 0; i < group.waiting.length; i += MAX_KEYS) {
      void send(group, group.waiting.slice(i, i + MAX_KEYS))
    }
  }
}

async function send(group: Group, waiting: Pending[]): Promise<void> {
  try {
    const keys = [...new Set(waiting.map((p) => p.key))]
    const list = await api.series({
      runs: [group.runId],
      keys,
      buckets: group.buckets,
      x: group.x,
    })
    for (const pending of waiting) pending.resolve(list.find((s) => s.key === pending.key))
  } catch (error) {
    for (const pending of waiting) pending.reject(error)
  }
}

/** The downsampled series of one key, fetched together with other charts' requests. */
export function batchedSeries(
  runId: string,
  key: string,
  x: 'step' | 'time',
  buckets: number,
  signal: AbortSignal,
): Promise<Series | undefined> {
  return new Promise((resolve, reject) => {
    const id = JSON.stringify([runId, x, buckets])
    let group = groups.get(id)
    if (!group) {
      group = { runId, x, buckets, waiting: [] }
      groups.set(id, group)
    }
    group.waiting.push({ key, resolve, reject })
    signal.addEventListener('abort', () =>
      reject(new DOMException('The chart no longer needs this series', 'AbortError')),
    )
    if (!scheduled) {
      scheduled = true
      queueMicrotask(flush)
    }
  })
}
