/** Helpers of the compare page: runs with their colours, param rows, scatter points. */
import type { Json, Run } from '../../api/types'
import {
  fieldValue,
  paramAt,
  paramPaths,
  parseField,
  segmentText,
  type Segment,
} from '../../lib/fields'

export interface CompareRun {
  id: string
  name: string
  color: string
}

export interface ParamRow {
  key: string
  values: (Json | undefined)[]
  differs: boolean
}

/** One row per param leaf found in any of the runs; `differs` when not all runs agree. */
export function paramRows(runs: readonly Run[]): ParamRow[] {
  const paths = new Map<string, Segment[]>()
  for (const run of runs) {
    for (const path of paramPaths(run.params)) paths.set(path.map(segmentText).join('.'), path)
  }
  const rows: ParamRow[] = []
  for (const [key, path] of [...paths.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const values = runs.map((run) => paramAt(run.params, path))
    const first = JSON.stringify(values[0] ?? null)
    const differs = values.some((v) => JSON.stringify(v ?? null) !== first)
    rows.push({ key, values, differs })
  }
  return rows
}

export interface ScatterPoint {
  run: Run
  x: number
  y: number
}

/** Runs where both fields are finite numbers, as (x, y) points. */
export function scatterPoints(
  runs: readonly Run[],
  xField: string,
  yField: string,
): ScatterPoint[] {
  const fx = parseField(xField)
  const fy = parseField(yField)
  const points: ScatterPoint[] = []
  for (const run of runs) {
    const x = fieldValue(run, fx)
    const y = fieldValue(run, fy)
    if (
      typeof x === 'number' &&
      typeof y === 'number' &&
      Number.isFinite(x) &&
      Number.isFinite(y)
    ) {
      points.push({ run, x, y })
    }
  }
  return points
}

/** Axis ticks: about `count` round numbers covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return []
  if (lo === hi) return [lo]
  const raw = (hi - lo) / count
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  const ticks: number[] = []
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)))
  }
  return ticks
}
