/**
 * Fields of a run as the filter language names them (`name`, `duration`,
 * `params.optim.lr`, `metrics.val/loss.min`), and their values on a loaded run.
 */
import type { Json, Run, Summary } from '../api/types'

export type Segment = string | number

export interface Field {
  /** The field in filter syntax, as sent in `sort` and `columns`. */
  text: string
  kind: 'column' | 'param' | 'metric'
  path: Segment[]
  summary: keyof Summary | null
}

export const METRIC_SUMMARIES = ['last', 'min', 'max', 'count'] as const

const KEYWORDS = new Set([
  'and',
  'or',
  'not',
  'in',
  'is',
  'has',
  'like',
  'ilike',
  'null',
  'true',
  'false',
])
const BARE = /^[A-Za-z_][A-Za-z0-9_/-]*$/

/** One path segment in filter syntax: bare when it can be, else a quoted string. */
export function segmentText(segment: Segment): string {
  if (typeof segment === 'number') return String(segment)
  if (BARE.test(segment) && !KEYWORDS.has(segment.toLowerCase())) return segment
  return JSON.stringify(segment)
}

export function paramField(path: Segment[]): Field {
  return {
    text: ['params', ...path].map(segmentText).join('.'),
    kind: 'param',
    path,
    summary: null,
  }
}

export function metricField(key: string, summary: keyof Summary = 'last'): Field {
  return {
    text: `metrics.${segmentText(key)}.${summary}`,
    kind: 'metric',
    path: [key],
    summary,
  }
}

export function columnField(name: string): Field {
  return { text: name, kind: 'column', path: [name], summary: null }
}

/** Split field text into segments, honouring "quoted", 'quoted' and `backticked` parts. */
export function splitField(text: string): Segment[] {
  const segments: Segment[] = []
  let i = 0
  while (i < text.length) {
    const quote = text[i]
    if (quote === '"' || quote === "'") {
      let j = i + 1
      while (j < text.length && text[j] !== quote) j += text[j] === '\\' ? 2 : 1
      const raw = text.slice(i, j + 1)
      segments.push(quote === '"' ? (JSON.parse(raw) as string) : raw.slice(1, -1))
      i = j + 2
    } else if (quote === '`') {
      const j = text.indexOf('`', i + 1)
      const end = j < 0 ? text.length : j
      segments.push(text.slice(i + 1, end))
      i = end + 2
    } else {
      const j = text.indexOf('.', i)
      const end = j < 0 ? text.length : j
      const part = text.slice(i, end)
      segments.push(/^[0-9]+$/.test(part) ? Number(part) : part)
      i = end + 1
    }
  }
  return segments
}

/** Parse field text written by `paramField`/`metricField` (or typed by a user). */
export function parseField(text: string): Field {
  let segments: Segment[]
  try {
    segments = splitField(text.trim())
  } catch {
    return columnField(text)
  }
  const [head, ...rest] = segments
  if (head === 'params' && rest.length) return { ...paramField(rest), text }
  if (head === 'metrics' && rest.length) {
    const last = rest[rest.length - 1]
    const isSummary =
      rest.length > 1 && typeof last === 'string' && ['last', 'min', 'max', 'count'].includes(last)
    const key = String(rest[0])
    const summary = isSummary ? (last as keyof Summary) : 'last'
    return { text, kind: 'metric', path: [key], summary }
  }
  return columnField(text)
}

/** The value of a JSON param at a path, or undefined when the run has none. */
export function paramAt(params: Record<string, Json>, path: Segment[]): Json | undefined {
  let value: Json | undefined = params
  for (const segment of path) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, Json>)[segment as string]
  }
  return value
}

/** The value of a field on a run: from the server's `values` if it sent them, else computed. */
export function fieldValue(run: Run, field: Field, now = Date.now() / 1000): Json | undefined {
  if (run.values && field.text in run.values) return run.values[field.text]
  if (field.kind === 'param') return paramAt(run.params, field.path)
  if (field.kind === 'metric') {
    const summary = run.metrics[String(field.path[0])]
    return summary ? (summary[field.summary ?? 'last'] as number | null) : undefined
  }
  if (field.text === 'duration') return duration(run, now)
  return (run as unknown as Record<string, Json>)[field.text]
}

/** Seconds from start to end (or to now while the run is running). */
export function duration(run: Run, now = Date.now() / 1000): number {
  const end = run.ended_at ?? (run.status === 'running' ? now : (run.heartbeat_at ?? now))
  return Math.max(0, end - run.started_at)
}

/** Every leaf path of a params object (arrays are leaves), in insertion order. */
export function paramPaths(params: Record<string, Json>, prefix: Segment[] = []): Segment[][] {
  const paths: Segment[][] = []
  for (const [key, value] of Object.entries(params)) {
    const path = [...prefix, key]
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      paths.push(...paramPaths(value, path))
    } else {
      paths.push(path)
    }
  }
  return paths
}

/** The fields that a set of runs offers as table columns: every param leaf and metric summary. */
export function availableFields(runs: readonly Run[]): { params: Field[]; metrics: Field[] } {
  const params = new Map<string, Field>()
  const metricKeys = new Set<string>()
  for (const run of runs) {
    for (const path of paramPaths(run.params)) {
      const field = paramField(path)
      if (!params.has(field.text)) params.set(field.text, field)
    }
    for (const key of Object.keys(run.metrics)) metricKeys.add(key)
  }
  const metrics: Field[] = []
  for (const key of [...metricKeys].sort()) {
    for (const summary of METRIC_SUMMARIES) metrics.push(metricField(key, summary))
  }
  const sortedParams = [...params.values()].sort((a, b) => a.text.localeCompare(b.text))
  return { params: sortedParams, metrics }
}

/** A short label for a column header. */
export function fieldLabel(field: Field): string {
  if (field.kind === 'param') return field.path.join('.')
  if (field.kind === 'metric') return `${field.path[0]} (${field.summary})`
  return field.text
}
