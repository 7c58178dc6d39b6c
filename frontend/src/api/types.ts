/** Shapes of the tracking server's HTTP API v1 (docs/http-api.md), after decoding. */

export type RunStatus = 'running' | 'finished' | 'failed' | 'killed' | 'crashed'

export const RUN_STATUSES: readonly RunStatus[] = [
  'running',
  'finished',
  'failed',
  'killed',
  'crashed',
]

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

export interface Summary {
  count: number
  last: number
  last_step: number | null
  last_time: number | null
  min: number
  max: number
}

export interface MetricSummary extends Summary {
  key: string
}

export interface Run {
  id: string
  experiment: string
  name: string
  status: RunStatus
  params: Record<string, Json>
  tags: string[]
  started_at: number
  ended_at: number | null
  heartbeat_at: number | null
  updated_at: number
  host: string
  pid: number | null
  command: string
  error: string | null
  environment: Record<string, Json> | null
  metrics: Record<string, Summary>
  /** Values of the requested `columns`, keyed by field, when the list asked for some. */
  values?: Record<string, Json>
}

/**
 * The code and environment captured at a run's start (docs/environment.md). Any client
 * can write it, so every field is optional and read defensively.
 */
export interface Environment {
  code?: {
    script?: string | null
    argv?: string[]
    notebook?: { path?: string | null; kernel?: string | null; shell?: string } | null
    commit?: string | null
    branch?: string | null
    remote?: string | null
    dirty?: boolean
    untracked?: string[]
    untracked_truncated?: number
    diff?: string
    diff_truncated?: boolean
    error?: string
  }
  python?: { version?: string; implementation?: string; executable?: string; prefix?: string }
  platform?: {
    system?: string
    release?: string
    machine?: string
    platform?: string
    distribution?: string
  }
  packages?: Record<string, string>
  packages_truncated?: number
  host?: {
    hostname?: string
    cpu?: string | null
    cpu_count?: number | null
    ram?: number
    gpus?: { index?: number; name?: string; memory?: number; driver?: string }[]
    error?: string
  }
}

export interface RunList {
  runs: Run[]
  total: number
  limit: number
  offset: number
}

export interface Experiment {
  id: number
  name: string
  created_at: number
  run_count: number
}

export interface Series {
  run: string
  key: string
  x: number[]
  y: number[]
  downsampled: boolean
  count: number
}

export interface Points {
  key: string
  x: number[]
  y: number[]
  t: number[]
  next: number | null
}

export interface StepFields {
  step: number
  time: number
  fields: Record<string, Json>
}

export interface Note {
  id: number
  run_id: string
  step: number | null
  created_at: number
  updated_at: number
  text: string
}

/** A piece of a run's console output, in the order written (docs/console.md). */
export interface ConsoleChunk {
  id: number
  stream: 'stdout' | 'stderr'
  time: number
  text: string
}

/** A page of console chunks; `next` is the cursor to pass as `after` for the next one. */
export interface ConsolePage {
  chunks: ConsoleChunk[]
  next: number | null
}

/** A file, folder, image or checkpoint stored with a run (docs/http-api.md). */
export interface Artifact {
  id: number
  run_id: string
  kind: 'file' | 'folder' | 'image' | 'checkpoint'
  name: string
  step: number | null
  size: number
  sha256: string
  media_type: string
  created_at: number
  meta: Record<string, Json>
}

export interface RunChange {
  id: string
  updated_at: number
  status: RunStatus
  deleted?: boolean
}

export interface ErrorBody {
  status: number
  code: string
  message: string
  detail?: Record<string, Json>
}
