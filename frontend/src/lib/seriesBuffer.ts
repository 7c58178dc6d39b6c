/**
 * The points one live chart holds: a downsampled history plus a bounded tail of raw
 * new points. When the tail outgrows its limit, history and tail are downsampled
 * together into a new history, so a chart left open on a run that logs for hours
 * holds at most `historyPoints + tailPoints` points.
 */
import { downsampleMinMaxLast } from './downsample'

export interface BufferLimits {
  /** Points the history keeps after each compaction (about 3 per bucket). */
  historyPoints: number
  /** Raw points appended before the buffer compacts. */
  tailPoints: number
}

export const DEFAULT_LIMITS: BufferLimits = { historyPoints: 2400, tailPoints: 1200 }

export class SeriesBuffer {
  private x: number[] = []
  private y: number[] = []
  private tailX: number[] = []
  private tailY: number[] = []
  /** Step of the newest point held: live updates ask for points after it. */
  lastStep: number | null = null
  /** Bumped on every change, so views know when to redraw. */
  version = 0
  readonly limits: BufferLimits

  constructor(limits: BufferLimits = DEFAULT_LIMITS) {
    this.limits = limits
  }

  get length(): number {
    return this.x.length + this.tailX.length
  }

  /** Replace everything with a (possibly downsampled) history from the server. */
  setHistory(x: number[], y: number[], lastStep: number | null): void {
    const buckets = Math.floor(this.limits.historyPoints / 3)
    const kept = downsampleMinMaxLast(x, y, buckets)
    this.x = kept.x
    this.y = kept.y
    this.tailX = []
    this.tailY = []
    this.lastStep = lastStep
    this.version += 1
  }

  /**
   * Append new points; `steps` are their steps (the same as `x` when x is the step).
   * Points not after the newest one held are ignored, so a resent range is harmless.
   */
  append(x: readonly number[], y: readonly number[], steps: readonly number[] = x): number {
    let added = 0
    let lastX = this.lastX()
    for (let i = 0; i < x.length; i++) {
      const step = steps[i]!
      if (this.lastStep !== null && step <= this.lastStep) continue
      if (lastX !== null && x[i]! < lastX) continue
      this.tailX.push(x[i]!)
      this.tailY.push(y[i]!)
      this.lastStep = step
      lastX = x[i]!
      added += 1
    }
    if (added) {
      this.version += 1
      if (this.tailX.length > this.limits.tailPoints) this.compact()
    }
    return added
  }

  /** Fold the tail into the history, downsampled. */
  compact(): void {
    const x = this.x.concat(this.tailX)
    const y = this.y.concat(this.tailY)
    const kept = downsampleMinMaxLast(x, y, Math.floor(this.limits.historyPoints / 3))
    this.x = kept.x
    this.y = kept.y
    this.tailX = []
    this.tailY = []
    this.version += 1
  }

  /** All points held, oldest first, as new arrays (safe to hand to a chart). */
  columns(): [number[], number[]] {
    return [this.x.concat(this.tailX), this.y.concat(this.tailY)]
  }

  private lastX(): number | null {
    if (this.tailX.length) return this.tailX[this.tailX.length - 1]!
    if (this.x.length) return this.x[this.x.length - 1]!
    return null
  }
}
