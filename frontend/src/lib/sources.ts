/**
 * Where a live chart's points come from: a metric (`/series` for history and zoom,
 * `/runs/<id>/points` for new points) or a numeric per-step field (`/runs/<id>/fields`).
 */
import { api, decodeNumber } from '../api/client'
import type { Json, Run, Series, StepFields } from '../api/types'
import { paramAt, type Segment } from './fields'
import { prefetch, takePrefetched } from './prefetch'
import { batchedSeries } from './seriesBatch'
import { isSystemMetric } from './system'

export type XMode = 'step' | 'time'

export interface Chunk {
  x: number[]
  y: number[]
  steps: number[]
}

export interface SeriesSource {
  /** The whole series, downsampled by the server when long; `lastStep` is its newest step. */
  history(signal: AbortSignal): Promise<{ x: number[]; y: number[]; lastStep: number | null }>
  /** Raw points after a step; `more` when the server had more than it sent. */
  after(step: number | null, signal: AbortSignal): Promise<Chunk & { more: boolean }>
  /** Full detail for a step range (zoom). */
  range(start: number, stop: number, signal: AbortSignal): Promise<{ x: number[]; y: number[] }>
}

export const HISTORY_BUCKETS = 500
const POINTS_LIMIT = 5000

const seriesKey = (runId: string, key: string, x: XMode) =>
  JSON.stringify(['series', runId, key, x, HISTORY_BUCKETS])

/** The key under which a run page finds its prefetched run. */
export const runKey = (id: string) => JSON.stringify(['run', id])

/**
 * Request a run and the history of its metrics before the run page's code has loaded;
 * the page and its charts take these answers instead of asking again.
 */
export function prefetchRunPage(id: string, x: XMode): void {
  const never = new AbortController().signal
  void prefetch(runKey(id), async () => {
    const run: Run = await api.getRun(id)
    for (const key of Object.keys(run.metrics)) {
      // The System group starts collapsed: its charts ask when it is opened.
      if (isSystemMetric(key)) continue
      void prefetch(seriesKey(run.id, key, x), () =>
        batchedSeries(run.id, key, x, HISTORY_BUCKETS, never),
      )
    }
    return run
  }).catch(() => {
    // The page asks again and shows the error.
  })
}

export function metricSource(
  runId: string,
  key: string,
  x: XMode,
  lastStepHint: () => number | null,
): SeriesSource {
  return {
    async history(signal) {
      // In time mode the x values are times; the newest step comes from the summary,
      // read before the series so that no point logged in between is skipped.
      const hint = lastStepHint()
      const series =
        (await takePrefetched<Series | undefined>(seriesKey(runId, key, x))) ??
        (await batchedSeries(runId, key, x, HISTORY_BUCKETS, signal))
      const xs = series?.x ?? []
      const lastStep = x === 'step' ? (xs.length ? xs[xs.length - 1]! : null) : hint
      return { x: xs, y: series?.y ?? [], lastStep }
    },
    async after(step, signal) {
      const points = await api.points(runId, key, step, POINTS_LIMIT, signal)
      return {
        x: x === 'step' ? points.x : points.t,
        y: points.y,
        steps: points.x,
        more: points.x.length >= POINTS_LIMIT,
      }
    },
    async range(start, stop, signal) {
      const [series] = await api.series(
        { runs: [runId], keys: [key], buckets: HISTORY_BUCKETS, start, stop, x },
        signal,
      )
      return { x: series?.x ?? [], y: series?.y ?? [] }
    },
  }
}

/** A numeric value of a per-step field, or null when the step has none. */
export function numericField(fields: Record<string, Json>, path: Segment[]): number | null {
  const value = paramAt(fields, path)
  if (typeof value === 'number') return value
  if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return decodeNumber(value)
  return null
}

function extract(rows: StepFields[], path: Segment[], x: XMode): Chunk {
  const chunk: Chunk = { x: [], y: [], steps: [] }
  for (const row of rows) {
    const value = numericField(row.fields, path)
    if (value === null) continue
    chunk.x.push(x === 'step' ? row.step : row.time)
    chunk.y.push(value)
    chunk.steps.push(row.step)
  }
  return chunk
}

export function fieldSource(runId: string, path: Segment[], x: XMode): SeriesSource {
  return {
    async history(signal) {
      const rows = await api.fields(runId, {}, signal)
      const chunk = extract(rows, path, x)
      const lastStep = rows.length ? rows[rows.length - 1]!.step : null
      return { x: chunk.x, y: chunk.y, lastStep }
    },
    async after(step, signal) {
      const rows = await api.fields(runId, { start: step === null ? 0 : step + 1 }, signal)
      return { ...extract(rows, path, x), more: false }
    },
    async range(start, stop, signal) {
      return extract(await api.fields(runId, { start, stop }, signal), path, x)
    },
  }
}

/** Numeric leaf paths of per-step fields (what can be plotted). */
export function numericFieldPaths(rows: readonly StepFields[]): Segment[][] {
  const seen = new Map<string, Segment[]>()
  const walk = (value: Json, path: Segment[]) => {
    if (typeof value === 'number' || value === 'NaN' || value === 'Infinity') {
      const id = JSON.stringify(path)
      if (!seen.has(id)) seen.set(id, path)
    } else if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(inner, [...path, key])
    }
  }
  for (const row of rows) walk(row.fields, [])
  return [...seen.values()]
}
