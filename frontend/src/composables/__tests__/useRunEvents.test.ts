import { afterEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { connection } from '../../api/client'
import type { RunChange } from '../../api/types'
import { useRunEvents } from '../useRunEvents'

/** A server whose streams send `events` then end; records the URLs and aborts. */
function serveStream(events: string[]) {
  const urls: string[] = []
  const signals: AbortSignal[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit) => {
      urls.push(url)
      signals.push(init.signal!)
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const text of events) controller.enqueue(new TextEncoder().encode(text))
          controller.close()
        },
      })
      return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
    }),
  )
  return { urls, signals }
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

afterEach(() => vi.unstubAllGlobals())

describe('useRunEvents', () => {
  it('hands over the changes of many events at once and resumes from the cursor', async () => {
    const { urls, signals } = serveStream([
      'retry: 500\n\nid: c1\nevent: runs\n' +
        'data: {"runs":[{"id":"a","updated_at":1,"status":"running"}],"cursor":"c1"}\n\n',
      'id: c2\nevent: runs\ndata: {"runs":[{"id":"a","updated_at":2,"status":"finished"},',
      '{"id":"b","updated_at":2,"status":"running"}],"cursor":"c2"}\n\n',
      'id: c3\nevent: end\ndata: {"cursor":"c3"}\n\n',
    ])
    const calls: [RunChange[], boolean][] = []
    const scope = effectScope()
    scope.run(() => useRunEvents((changes, reset) => calls.push([changes, reset]), 50))
    await wait(300)

    expect(urls[0]).toBe('/api/v1/events')
    expect(urls[1]).toBe('/api/v1/events?cursor=c3')
    expect(calls[0]![1]).toBe(false)
    const first = new Map(calls[0]![0].map((c) => [c.id, c.status]))
    expect(first).toEqual(
      new Map([
        ['a', 'finished'],
        ['b', 'running'],
      ]),
    )

    scope.stop()
    expect(signals.at(-1)!.aborted).toBe(true)
  })

  it('passes on a reset', async () => {
    serveStream(['id: c1\nevent: runs\ndata: {"runs":[],"cursor":"c1","reset":true}\n\n'])
    const resets: boolean[] = []
    const scope = effectScope()
    scope.run(() => useRunEvents((_changes, reset) => resets.push(reset), 20))
    await wait(100)
    scope.stop()
    expect(resets[0]).toBe(true)
  })

  it('says the server is down when the stream cannot reach it, and back when it can', async () => {
    connection.down = false
    let reachable = false
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => {
        if (!reachable) throw new TypeError('Failed to fetch')
        const body = new ReadableStream<Uint8Array>({ start: () => {} })
        return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
      }),
    )
    vi.useFakeTimers()
    const scope = effectScope()
    try {
      scope.run(() => useRunEvents(() => {}, 20))
      await vi.advanceTimersByTimeAsync(10)
      expect(connection.down).toBe(true)

      reachable = true
      await vi.advanceTimersByTimeAsync(5_000)
      expect(connection.down).toBe(false)
    } finally {
      scope.stop()
      vi.useRealTimers()
      connection.down = false
    }
  })

  it('says the server is down when a proxy answers for it with a 502', async () => {
    connection.down = false
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response('bad gateway', { status: 502 })),
    )
    const scope = effectScope()
    scope.run(() => useRunEvents(() => {}, 20))
    await wait(50)
    scope.stop()
    expect(connection.down).toBe(true)
    connection.down = false
  })
})
