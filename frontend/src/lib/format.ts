/** Formatting of numbers, times and durations for display (always plain text). */
import type { Json } from '../api/types'

export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '∞'
  if (value === -Infinity) return '−∞'
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value)
  const abs = Math.abs(value)
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3).replace(/\.?0+e/, 'e')
  }
  return String(Number(value.toPrecision(5)))
}

export function formatValue(value: Json | undefined): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'number') return formatNumber(value)
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  return JSON.stringify(value)
}

const pad = (n: number) => String(n).padStart(2, '0')

/** Local date and time, `2024-05-01 14:03:07`. */
export function formatTime(epochSeconds: number | null | undefined): string {
  if (epochSeconds === null || epochSeconds === undefined) return ''
  const d = new Date(epochSeconds * 1000)
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  )
}

/** `45s`, `12m 05s`, `3h 02m`, `2d 04h`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return ''
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`
}

/** `5 s ago`, `3 min ago`, `2 h ago`, else the date. */
export function formatAgo(epochSeconds: number, now = Date.now() / 1000): string {
  const delta = now - epochSeconds
  if (delta < 60) return `${Math.max(0, Math.round(delta))} s ago`
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`
  return formatTime(epochSeconds).slice(0, 10)
}
