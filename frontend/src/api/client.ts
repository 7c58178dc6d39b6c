/**
 * The typed client of the tracking server's HTTP API v1.
 *
 * Every call goes through `request`, which adds the token, turns the API's one error
 * shape into an `ApiError`, and keeps `connection` (server reachable? token needed?)
 * up to date for the banner and the token dialog. Numbers that JSON cannot carry
 * arrive as the strings "NaN", "Infinity" and "-Infinity" and are decoded here.
 */
import { reactive } from 'vue'
import type {
  Artifact,
  ConsolePage,
  ErrorBody,
  Experiment,
  Json,
  MetricSummary,
  Note,
  Points,
  Run,
  RunList,
  Series,
  StepFields,
  Summary,
} from './types'

const BASE = '/api/v1'
const TOKEN_KEY = 'labnotebook.token'

/** An error answered by the server, or the server not answering (status 0). */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly detail: Record<string, Json>

  constructor(status: number, code: string, message: string, detail: Record<string, Json> = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.detail = detail
  }
}

function readToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? ''
  } catch {
    return ''
  }
}

/** What the app knows about its connection; `epoch` grows when everything should reload. */
export const connection = reactive({
  down: false,
  authRequired: false,
  token: readToken(),
  epoch: 0,
})

/** Use this token for every request (kept for the browser tab's session only). */
export function setToken(token: string): void {
  connection.token = token.trim()
  try {
    sessionStorage.setItem(TOKEN_KEY, connection.token)
  } catch {
    // Storage may be disabled; the token then lasts until the page is reloaded.
  }
  connection.authRequired = false
  reload()
}

/** Ask every live view to fetch its data again (after the server came back, a new token). */
export function reload(): void {
  connection.epoch += 1
}

/** Decode a number of the API: finite numbers pass, "NaN"/"Infinity"/"-Infinity" convert. */
export function decodeNumber(value: unknown): number {
  if (typeof value === 'number') return value
  if (value === 'NaN') return NaN
  if (value === 'Infinity') return Infinity
  if (value === '-Infinity') return -Infinity
  return NaN
}

/** Decode a JSON value that may be a non-finite number; any other value is kept. */
export function decodeValue(value: Json): Json {
  if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return decodeNumber(value)
  return value
}

function decodeNumbers(values: unknown): number[] {
  if (!Array.isArray(values)) return []
  const out = new Array<number>(values.length)
  for (let i = 0; i < values.length; i++) out[i] = decodeNumber(values[i])
  return out
}

function decodeSummary(raw: Record<string, unknown>): Summary {
  return {
    count: Number(raw.count ?? 0),
    last: decodeNumber(raw.last),
    last_step: (raw.last_step as number | null) ?? null,
    last_time: (raw.last_time as number | null) ?? null,
    min: decodeNumber(raw.min),
    max: decodeNumber(raw.max),
  }
}

/** Decode a run of the API (metric summaries and column values may be non-finite). */
export function decodeRun(raw: Record<string, unknown>): Run {
  const metrics: Record<string, Summary> = {}
  const rawMetrics = (raw.metrics ?? {}) as Record<string, Record<string, unknown>>
  for (const key of Object.keys(rawMetrics)) metrics[key] = decodeSummary(rawMetrics[key]!)

  const run = { ...raw, metrics } as unknown as Run
  run.params = (raw.params ?? {}) as Record<string, Json>
  run.tags = (raw.tags ?? []) as string[]
  if (raw.values) {
    const values: Record<string, Json> = {}
    for (const [field, value] of Object.entries(raw.values as Record<string, Json>)) {
      values[field] = decodeValue(value)
    }
    run.values = values
  }
  return run
}

type QueryValue = string | number | undefined | null | readonly (string | number)[]

/** Build `?a=1&b=x&b=y`, skipping empty values. */
export function queryString(query: Record<string, QueryValue>): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue
    if (Array.isArray(value)) for (const item of value) params.append(name, String(item))
    else params.append(name, String(value))
  }
  const text = params.toString()
  return text ? `?${text}` : ''
}

export function authHeaders(): Record<string, string> {
  return connection.token ? { Authorization: `Bearer ${connection.token}` } : {}
}

interface RequestOptions {
  method?: string
  body?: unknown
  signal?: AbortSignal
}

async function request(path: string, options: RequestOptions = {}): Promise<unknown> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders() }
  if (options.body !== undefined) headers['Content-Type'] = 'application/json'

  let response: Response
  try {
    response = await fetch(BASE + path, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    connection.down = true
    throw new ApiError(
      0,
      'server_unreachable',
      'The tracking server does not answer. Check that `labnotebook serve` is running.',
    )
  }

  connection.down = response.status >= 502 && response.status <= 504
  if (response.status === 401) connection.authRequired = true
  if (response.status === 204) return undefined

  const text = await response.text()
  let body: unknown = undefined
  try {
    body = text ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  if (!response.ok) throw errorFrom(response.status, body, text)
  return body
}

/** Bytes of a route (a picture, a download), fetched with the token like every call. */
async function requestBlob(path: string, signal?: AbortSignal): Promise<Blob> {
  let response: Response
  try {
    response = await fetch(BASE + path, { headers: authHeaders(), signal })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    connection.down = true
    throw new ApiError(0, 'server_unreachable', 'The tracking server does not answer.')
  }
  if (response.status === 401) connection.authRequired = true
  if (!response.ok) {
    const text = await response.text()
    let body: unknown = undefined
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {
      body = undefined
    }
    throw errorFrom(response.status, body, text)
  }
  return await response.blob()
}

function errorFrom(status: number, body: unknown, text: string): ApiError {
  const error = (body as { error?: ErrorBody } | undefined)?.error
  if (error && typeof error.message === 'string') {
    return new ApiError(status, error.code ?? 'error', error.message, error.detail ?? {})
  }
  const summary = text
    .replace(/<[^>]*>/g, ' ')
    .trim()
    .slice(0, 200)
  return new ApiError(status, 'http_error', `The server answered ${status}. ${summary}`.trim())
}

export interface RunQuery {
  where?: string
  experiment?: string
  sort?: string
  order?: 'asc' | 'desc'
  limit?: number
  offset?: number
  columns?: readonly string[]
}

export interface SeriesQuery {
  runs: readonly string[]
  keys: readonly string[]
  buckets?: number
  start?: number
  stop?: number
  x?: 'step' | 'time'
}

const path = (id: string | number) => encodeURIComponent(String(id))

/** The API, one function per route. Every function takes an optional AbortSignal. */
export const api = {
  async health(signal?: AbortSignal): Promise<{ status: string }> {
    return (await request('/health', { signal })) as { status: string }
  },

  async version(signal?: AbortSignal): Promise<{ version: string; schema: string }> {
    return (await request('/version', { signal })) as { version: string; schema: string }
  },

  async experiments(signal?: AbortSignal): Promise<Experiment[]> {
    const body = (await request('/experiments', { signal })) as { experiments: Experiment[] }
    return body.experiments
  },

  async listRuns(query: RunQuery, signal?: AbortSignal): Promise<RunList> {
    const qs = queryString({
      where: query.where?.trim(),
      experiment: query.experiment,
      sort: query.sort,
      order: query.order,
      limit: query.limit,
      offset: query.offset,
      columns: query.columns?.length ? query.columns.join(',') : undefined,
    })
    const body = (await request(`/runs${qs}`, { signal })) as Omit<RunList, 'runs'> & {
      runs: Record<string, unknown>[]
    }
    return { ...body, runs: body.runs.map(decodeRun) }
  },

  async getRun(id: string, signal?: AbortSignal): Promise<Run> {
    return decodeRun((await request(`/runs/${path(id)}`, { signal })) as Record<string, unknown>)
  },

  async updateRun(
    id: string,
    changes: { name?: string; tags?: string[]; status?: string },
  ): Promise<Run> {
    const body = await request(`/runs/${path(id)}`, { method: 'PATCH', body: changes })
    return decodeRun(body as Record<string, unknown>)
  },

  async metrics(id: string, signal?: AbortSignal): Promise<MetricSummary[]> {
    const body = (await request(`/runs/${path(id)}/metrics`, { signal })) as {
      metrics: (Record<string, unknown> & { key: string })[]
    }
    return body.metrics.map((m) => ({ key: m.key, ...decodeSummary(m) }))
  },

  async series(query: SeriesQuery, signal?: AbortSignal): Promise<Series[]> {
    const qs = queryString({
      run: query.runs,
      key: query.keys,
      buckets: query.buckets,
      start: query.start,
      stop: query.stop,
      x: query.x,
    })
    const body = (await request(`/series${qs}`, { signal })) as {
      series: (Omit<Series, 'x' | 'y'> & { x: unknown[]; y: unknown[] })[]
    }
    return body.series.map((s) => ({ ...s, x: decodeNumbers(s.x), y: decodeNumbers(s.y) }))
  },

  async points(
    id: string,
    key: string,
    after: number | null,
    limit: number,
    signal?: AbortSignal,
  ): Promise<Points> {
    const qs = queryString({ key, after: after ?? undefined, limit })
    const body = (await request(`/runs/${path(id)}/points${qs}`, { signal })) as Points
    return { ...body, x: decodeNumbers(body.x), y: decodeNumbers(body.y), t: decodeNumbers(body.t) }
  },

  async fields(
    id: string,
    range: { start?: number; stop?: number } = {},
    signal?: AbortSignal,
  ): Promise<StepFields[]> {
    const qs = queryString({ start: range.start, stop: range.stop })
    const body = (await request(`/runs/${path(id)}/fields${qs}`, { signal })) as {
      fields: StepFields[]
    }
    return body.fields
  },

  async notes(id: string, signal?: AbortSignal): Promise<Note[]> {
    const body = (await request(`/runs/${path(id)}/notes`, { signal })) as { notes: Note[] }
    return body.notes
  },

  async addNote(id: string, text: string, step?: number | null): Promise<Note> {
    const payload = step === undefined || step === null ? { text } : { text, step }
    return (await request(`/runs/${path(id)}/notes`, { method: 'POST', body: payload })) as Note
  },

  async editNote(noteId: number, text: string): Promise<Note> {
    return (await request(`/notes/${path(noteId)}`, { method: 'PATCH', body: { text } })) as Note
  },

  async artifacts(
    id: string,
    filter: { kind?: Artifact['kind']; name?: string } = {},
    signal?: AbortSignal,
  ): Promise<Artifact[]> {
    const qs = queryString({ kind: filter.kind, name: filter.name })
    const body = (await request(`/runs/${path(id)}/artifacts${qs}`, { signal })) as {
      artifacts: Artifact[]
    }
    return body.artifacts
  },

  /** The bytes of one artifact (a folder's are its JSON manifest). */
  async artifactContent(id: string, artifactId: number, signal?: AbortSignal): Promise<Blob> {
    return await requestBlob(`/runs/${path(id)}/artifacts/${path(artifactId)}/content`, signal)
  },

  /** A folder artifact as one tar file (`<name>/<path>` members). */
  async artifactArchive(id: string, artifactId: number, signal?: AbortSignal): Promise<Blob> {
    return await requestBlob(`/runs/${path(id)}/artifacts/${path(artifactId)}/archive`, signal)
  },

  /** Console chunks after the cursor `after`, oldest first; `q` keeps chunks containing it. */
  async console(
    id: string,
    query: { after?: number | null; limit?: number; q?: string } = {},
    signal?: AbortSignal,
  ): Promise<ConsolePage> {
    const qs = queryString({ after: query.after, limit: query.limit, q: query.q })
    return (await request(`/runs/${path(id)}/console${qs}`, { signal })) as ConsolePage
  },

  /** One of a run's blobs by its sha256, e.g. a picture referenced by a note. */
  async blob(id: string, sha256: string, signal?: AbortSignal): Promise<Blob> {
    return await requestBlob(`/runs/${path(id)}/blobs/${path(sha256)}`, signal)
  },
}
