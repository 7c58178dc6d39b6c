/**
 * The live stream of run changes (`GET /api/v1/events`, server-sent events).
 *
 * Read with fetch rather than `EventSource` so that the stream carries the same
 * `Authorization` header as every other request; the cursor of the last event is
 * sent back on reconnection, as `EventSource` does with Last-Event-ID.
 */
import { ApiError, authHeaders, connection, queryString } from './client'
import type { RunChange } from './types'

export interface SseEvent {
  event: string
  data: string
  id: string | null
}

/**
 * Split server-sent-event text into complete events; `rest` is an unfinished tail to
 * prepend to the next chunk. Comments (`: keep-alive`) and unknown lines are skipped.
 */
export function parseSse(text: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = []
  const normalised = text.replace(/\r\n?/g, '\n')
  const blocks = normalised.split('\n\n')
  const rest = blocks.pop() ?? ''

  for (const block of blocks) {
    let event = 'message'
    let id: string | null = null
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const name = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (name === 'event') event = value
      else if (name === 'data') data.push(value)
      else if (name === 'id') id = value
    }
    if (data.length || id !== null) events.push({ event, data: data.join('\n'), id })
  }
  return { events, rest }
}

export interface RunsEvent {
  runs: RunChange[]
  cursor: string | null
  /** The server cannot list what changed since the cursor: reload everything shown. */
  reset: boolean
}

/**
 * Read one connection of the stream until the server ends it or `signal` aborts.
 * Calls `onRuns` for each `runs` event; resolves with the last cursor seen.
 */
export async function readEventStream(
  cursor: string | null,
  onRuns: (event: RunsEvent) => void,
  signal: AbortSignal,
  onOpen: () => void = () => {},
): Promise<string | null> {
  let response: Response
  try {
    response = await fetch(`/api/v1/events${queryString({ cursor })}`, {
      headers: { Accept: 'text/event-stream', ...authHeaders() },
      signal,
      cache: 'no-store',
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    // A page that only follows the stream (a run page left open) makes no other
    // request: the stream is what tells it the server is gone.
    connection.down = true
    throw new ApiError(0, 'server_unreachable', 'The tracking server does not answer.')
  }
  if (response.status === 401) connection.authRequired = true
  if (response.status >= 502 && response.status <= 504) connection.down = true
  if (!response.ok || !response.body) {
    throw new ApiError(response.status, 'events_unavailable', `events stream: ${response.status}`)
  }
  connection.down = false
  onOpen()

  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let last = cursor
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const { events, rest } = parseSse(buffer + value)
      buffer = rest
      for (const event of events) {
        if (event.id) last = event.id
        if (event.event !== 'runs' || !event.data) continue
        const body = JSON.parse(event.data) as {
          runs?: RunChange[]
          cursor?: string
          reset?: boolean
        }
        if (body.cursor) last = body.cursor
        onRuns({ runs: body.runs ?? [], cursor: last, reset: body.reset === true })
      }
    }
  } finally {
    reader.releaseLock()
  }
  return last
}
