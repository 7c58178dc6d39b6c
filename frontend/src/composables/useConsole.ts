import { onScopeDispose, ref, shallowRef, triggerRef, watch, type Ref } from 'vue'
import { api } from '../api/client'
import type { ConsoleChunk } from '../api/types'
import { asApiError, isAbort, type Status } from './useResource'

/** Chunks read per request. */
export const CONSOLE_PAGE = 500
/** Milliseconds between reads of new output while the run is running. */
export const CONSOLE_POLL = 2000

export interface ConsoleLine {
  stream: ConsoleChunk['stream']
  /** The line as written, without its newline (may hold "\r" and colour codes). */
  text: string
}

// Terminal colour and cursor sequences, which a terminal acts on instead of printing.
const ESCAPES = /\x1b\[[0-9;?]*[ -/]*[@-~]/g

/** What a terminal shows of a line: the text after its last "\r", without escape codes. */
export function shownText(text: string): string {
  let end = text.length
  while (end > 0 && text[end - 1] === '\r') end -= 1
  const line = text.slice(text.lastIndexOf('\r', end - 1) + 1, end)
  return line.includes('\x1b') ? line.replace(ESCAPES, '') : line
}

/**
 * Lines built from console chunks in the order written. A chunk that continues the
 * last line of its stream (no newline in between, nothing from the other stream since)
 * extends that line.
 */
export class ConsoleLines {
  readonly lines: ConsoleLine[] = []
  characters = 0
  private openLine = -1

  add(chunks: readonly ConsoleChunk[]): void {
    for (const chunk of chunks) {
      if (!chunk.text) continue
      this.characters += chunk.text.length
      const parts = chunk.text.split('\n')
      const last = this.lines[this.lines.length - 1]
      let first = 0
      if (this.openLine === this.lines.length - 1 && last && last.stream === chunk.stream) {
        last.text += parts[0]
        first = 1
      }
      for (let i = first; i < parts.length; i++) {
        this.lines.push({ stream: chunk.stream, text: parts[i]! })
      }
      // A chunk that ends with a newline leaves an empty last part: no open line.
      if (parts[parts.length - 1] === '') {
        this.lines.pop()
        this.openLine = -1
      } else {
        this.openLine = this.lines.length - 1
      }
    }
  }
}

/** The lines that contain `query` (case-insensitive), as indexes into `lines`. */
export function matchingLines(lines: readonly ConsoleLine[], query: string): number[] {
  const needle = query.toLowerCase()
  const found: number[] = []
  for (let i = 0; i < lines.length; i++) {
    if (shownText(lines[i]!.text).toLowerCase().includes(needle)) found.push(i)
  }
  return found
}

/**
 * A run's console output, read page by page after a cursor once `enabled` turns true;
 * read again when `tick` changes (the run changed) and every CONSOLE_POLL ms while
 * `running`. `lines` is one array that grows in place (a shallow ref triggered on each
 * change), so 10 MB of output is not made reactive line by line.
 */
export function useConsole(
  runId: Ref<string>,
  tick: Ref<number>,
  running: Ref<boolean>,
  enabled: Ref<boolean>,
) {
  let state = new ConsoleLines()
  const lines = shallowRef<readonly ConsoleLine[]>(state.lines)
  const characters = ref(0)
  const status = ref<Status>('idle')
  const error = shallowRef<ReturnType<typeof asApiError> | null>(null)
  let cursor: number | null = null
  let controller: AbortController | null = null
  let again = false

  async function load(): Promise<void> {
    if (!enabled.value) return
    if (controller) {
      again = true
      return
    }
    const current = new AbortController()
    controller = current
    const id = runId.value
    if (status.value !== 'ready') status.value = 'loading'
    try {
      do {
        again = false
        for (;;) {
          const page = await api.console(id, { after: cursor, limit: CONSOLE_PAGE }, current.signal)
          if (current.signal.aborted) return
          state.add(page.chunks)
          cursor = page.next ?? cursor
          if (page.chunks.length) {
            characters.value = state.characters
            triggerRef(lines)
          }
          if (page.chunks.length < CONSOLE_PAGE) break
        }
      } while (again)
      error.value = null
      status.value = 'ready'
    } catch (caught) {
      if (isAbort(caught) || current.signal.aborted) return
      error.value = asApiError(caught)
      status.value = 'error'
    } finally {
      if (controller === current) controller = null
    }
  }

  function reset(): void {
    controller?.abort()
    controller = null
    state = new ConsoleLines()
    lines.value = state.lines
    characters.value = 0
    cursor = null
    status.value = 'idle'
    error.value = null
    void load()
  }

  watch(runId, reset)
  watch(enabled, () => void load(), { immediate: true })
  watch(tick, () => void load())

  let timer: ReturnType<typeof setInterval> | null = null
  watch(
    () => running.value && enabled.value,
    (poll) => {
      if (timer !== null) clearInterval(timer)
      timer = poll ? setInterval(() => void load(), CONSOLE_POLL) : null
    },
    { immediate: true },
  )
  onScopeDispose(() => {
    controller?.abort()
    if (timer !== null) clearInterval(timer)
  })

  return { lines, characters, status, error, reload: load }
}
