import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, api, connection, decodeNumber, decodeRun, queryString } from '../client'
import { parseSse } from '../events'

function respond(status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  vi.stubGlobal(
    'fetch',
    vi.fn(async () => new Response(status === 204 ? null : text, { status })),
  )
}

afterEach(() => {
  vi.unstubAllGlobals()
  connection.down = false
  connection.authRequired = false
})

describe('decoding', () => {
  it('turns the non-finite strings into numbers', () => {
    expect(decodeNumber('NaN')).toBeNaN()
    expect(decodeNumber('Infinity')).toBe(Infinity)
    expect(decodeNumber('-Infinity')).toBe(-Infinity)
    expect(decodeNumber(1.5)).toBe(1.5)
  })

  it('decodes metric summaries and column values of a run, not its params', () => {
    const run = decodeRun({
      id: 'abc',
      params: { note: 'NaN' },
      tags: [],
      metrics: { loss: { count: 3, last: 'NaN', min: '-Infinity', max: 'Infinity', last_step: 2 } },
      values: { 'metrics.loss.max': 'Infinity', 'params.note': 'x' },
    })
    expect(run.metrics.loss!.last).toBeNaN()
    expect(run.metrics.loss!.min).toBe(-Infinity)
    expect(run.metrics.loss!.max).toBe(Infinity)
    expect(run.params.note).toBe('NaN')
    expect(run.values!['metrics.loss.max']).toBe(Infinity)
  })

  it('decodes series and points', async () => {
    respond(200, {
      series: [{ run: 'a', key: 'k', x: [0, 1, 2], y: [1, 'NaN', 'Infinity'], downsampled: false }],
    })
    const [series] = await api.series({ runs: ['a'], keys: ['k'] })
    expect(series!.y[0]).toBe(1)
    expect(series!.y[1]).toBeNaN()
    expect(series!.y[2]).toBe(Infinity)
  })
})

describe('requests', () => {
  it('repeats list parameters and drops empty ones', () => {
    expect(queryString({ run: ['a', 'b'], key: 'loss', start: undefined, where: '' })).toBe(
      '?run=a&run=b&key=loss',
    )
  })

  it('turns the error shape into an ApiError with its detail', async () => {
    respond(400, {
      error: { status: 400, code: 'invalid_filter', message: 'bad', detail: { column: 7 } },
    })
    const error = await api.listRuns({ where: 'params.lr <' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('invalid_filter')
    expect((error as ApiError).detail.column).toBe(7)
  })

  it('asks for a token on 401', async () => {
    respond(401, { error: { status: 401, code: 'unauthorized', message: 'token needed' } })
    await expect(api.experiments()).rejects.toBeInstanceOf(ApiError)
    expect(connection.authRequired).toBe(true)
  })

  it('marks the server down when it does not answer', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => {
        throw new TypeError('Failed to fetch')
      }),
    )
    const error = (await api.health().catch((e: unknown) => e)) as ApiError
    expect(error.status).toBe(0)
    expect(connection.down).toBe(true)
  })

  it('sends the token as a bearer header', async () => {
    respond(200, { experiments: [] })
    connection.token = 's3cret'
    await api.experiments()
    const init = (fetch as unknown as { mock: { calls: [string, RequestInit][] } }).mock
      .calls[0]![1]
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer s3cret')
    connection.token = ''
  })
})

describe('server-sent events', () => {
  it('splits complete events and keeps the unfinished tail', () => {
    const text = 'id: c1\nevent: runs\ndata: {"runs":[]}\n\n: keep-alive\n\nevent: runs\ndata: {"ru'
    const { events, rest } = parseSse(text)
    expect(events).toEqual([{ event: 'runs', data: '{"runs":[]}', id: 'c1' }])
    expect(rest).toBe('event: runs\ndata: {"ru')
  })

  it('joins multi-line data and accepts CRLF', () => {
    const { events } = parseSse('event: runs\r\ndata: a\r\ndata: b\r\n\r\n')
    expect(events[0]!.data).toBe('a\nb')
  })
})
