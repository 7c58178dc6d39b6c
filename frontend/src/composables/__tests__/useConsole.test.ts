import { afterEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import type { ConsoleChunk } from '../../api/types'
import { CONSOLE_PAGE, ConsoleLines, matchingLines, shownText, useConsole } from '../useConsole'

let nextId = 1
function chunk(text: string, stream: ConsoleChunk['stream'] = 'stdout'): ConsoleChunk {
  return { id: nextId++, stream, time: nextId, text }
}

/** A server holding `stored` chunks; answers pages after the cursor like the API. */
function serveConsole(stored: ConsoleChunk[]) {
  const urls: string[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      urls.push(url)
      const query = new URL(url, 'http://test').searchParams
      const after = Number(query.get('after') ?? 0)
      const limit = Number(query.get('limit'))
      const chunks = stored.filter((c) => c.id > after).slice(0, limit)
      const next = chunks.length ? chunks[chunks.length - 1]!.id : after || null
      return new Response(JSON.stringify({ chunks, next }), {
        headers: { 'Content-Type': 'application/json' },
      })
    }),
  )
  return urls
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

afterEach(() => vi.unstubAllGlobals())

describe('ConsoleLines', () => {
  it('joins chunks into lines per stream, in the order written', () => {
    const lines = new ConsoleLines()
    lines.add([chunk('epoch 1 '), chunk('loss 0.5\nepoch 2'), chunk('oops\n', 'stderr')])
    lines.add([chunk(' loss 0.4\n'), chunk(''), chunk('\n\nend')])
    expect(lines.lines).toEqual([
      { stream: 'stdout', text: 'epoch 1 loss 0.5' },
      { stream: 'stdout', text: 'epoch 2' },
      { stream: 'stderr', text: 'oops' },
      { stream: 'stdout', text: ' loss 0.4' },
      { stream: 'stdout', text: '' },
      { stream: 'stdout', text: '' },
      { stream: 'stdout', text: 'end' },
    ])
  })

  it('shows what a terminal shows of progress bars and colours', () => {
    expect(shownText('\r1/3 [#  ]\r2/3 [## ]\r3/3 [###]')).toBe('3/3 [###]')
    expect(shownText('windows line\r')).toBe('windows line')
    expect(shownText('\x1b[31mred\x1b[0m text')).toBe('red text')
  })

  it('finds lines case-insensitively', () => {
    const lines = new ConsoleLines()
    lines.add([chunk('Loss is NaN\nall good\nloss 1\n')])
    expect(matchingLines(lines.lines, 'LOSS')).toEqual([0, 2])
  })
})

describe('useConsole', () => {
  it('reads every page, then only what is new', async () => {
    const stored = Array.from({ length: CONSOLE_PAGE + 3 }, (_, i) => chunk(`line ${i}\n`))
    const urls = serveConsole(stored)
    const enabled = ref(false)
    const tick = ref(0)
    const scope = effectScope()
    const view = scope.run(() => useConsole(ref('abc'), tick, ref(false), enabled))!
    await wait(20)
    expect(urls).toEqual([]) // nothing is read until the console is shown

    enabled.value = true
    await wait(50)
    expect(view.lines.value.length).toBe(CONSOLE_PAGE + 3)
    expect(view.status.value).toBe('ready')
    expect(urls.length).toBe(2)
    expect(urls[1]).toContain(`after=${stored[CONSOLE_PAGE - 1]!.id}`)

    stored.push(chunk('new\n', 'stderr'))
    tick.value += 1
    await nextTick()
    await wait(50)
    expect(urls.length).toBe(3)
    expect(view.lines.value.at(-1)).toEqual({ stream: 'stderr', text: 'new' })
    scope.stop()
  })

  it('starts again for another run and reports errors', async () => {
    serveConsole([chunk('first run\n')])
    const runId = ref('abc')
    const scope = effectScope()
    const view = scope.run(() => useConsole(runId, ref(0), ref(false), ref(true)))!
    await wait(50)
    expect(view.lines.value.map((l) => l.text)).toEqual(['first run'])

    vi.stubGlobal(
      'fetch',
      vi.fn(
        async () =>
          new Response(JSON.stringify({ error: { status: 404, message: 'gone' } }), {
            status: 404,
          }),
      ),
    )
    runId.value = 'def'
    await wait(50)
    expect(view.lines.value).toEqual([])
    expect(view.status.value).toBe('error')
    expect(view.error.value?.message).toBe('gone')
    scope.stop()
  })
})
