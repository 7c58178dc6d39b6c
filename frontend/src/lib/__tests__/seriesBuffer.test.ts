import { describe, expect, it } from 'vitest'
import { downsampleMinMaxLast } from '../downsample'
import { SeriesBuffer } from '../seriesBuffer'
import { ema } from '../smooth'

describe('downsampleMinMaxLast', () => {
  it('keeps every spike, the first and the last point', () => {
    const n = 100_000
    const x = Array.from({ length: n }, (_, i) => i)
    const y = x.map((i) => Math.sin(i / 1000))
    y[31_337] = 50
    y[77_777] = -50
    const out = downsampleMinMaxLast(x, y, 100)
    expect(out.x.length).toBeLessThanOrEqual(301)
    expect(out.y).toContain(50)
    expect(out.y).toContain(-50)
    expect(out.x[0]).toBe(0)
    expect(out.x[out.x.length - 1]).toBe(n - 1)
    for (let i = 1; i < out.x.length; i++) expect(out.x[i]!).toBeGreaterThan(out.x[i - 1]!)
  })

  it('returns short series unchanged', () => {
    expect(downsampleMinMaxLast([1, 2, 3], [4, 5, 6], 10)).toEqual({ x: [1, 2, 3], y: [4, 5, 6] })
  })
})

describe('SeriesBuffer', () => {
  it('holds a bounded number of points however long the run logs', () => {
    const buffer = new SeriesBuffer({ historyPoints: 300, tailPoints: 200 })
    buffer.setHistory([0, 1, 2], [1, 1, 1], 2)
    let step = 3
    let peak = 0
    // An hour at 100 steps/s, delivered in one-second chunks.
    for (let second = 0; second < 3600; second++) {
      const x = Array.from({ length: 100 }, (_, i) => step + i)
      const y = x.map((s) => (s === 200_000 ? 1e6 : Math.cos(s)))
      buffer.append(x, y)
      step += 100
      peak = Math.max(peak, buffer.length)
    }
    expect(peak).toBeLessThanOrEqual(301 + 200 + 100)
    expect(buffer.lastStep).toBe(step - 1)
    const [xs, ys] = buffer.columns()
    expect(xs[xs.length - 1]).toBe(step - 1)
    expect(ys).toContain(1e6)
  })

  it('ignores points it already holds', () => {
    const buffer = new SeriesBuffer()
    buffer.setHistory([0, 1, 2], [0, 1, 2], 2)
    expect(buffer.append([1, 2, 3], [9, 9, 3])).toBe(1)
    expect(buffer.columns()).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ])
  })

  it('tracks steps separately from x in wall-time mode', () => {
    const buffer = new SeriesBuffer()
    buffer.setHistory([100.5], [1], 7)
    buffer.append([101.5, 102.5], [2, 3], [8, 9])
    expect(buffer.lastStep).toBe(9)
    expect(buffer.columns()[0]).toEqual([100.5, 101.5, 102.5])
  })
})

describe('ema', () => {
  it('is the identity at weight 0 and debiased at the start', () => {
    expect(ema([1, 2, 3], 0)).toEqual([1, 2, 3])
    const out = ema([5, 5, 5], 0.9)
    for (const v of out) expect(v).toBeCloseTo(5)
  })

  it('passes gaps through', () => {
    expect(ema([1, null, NaN, 1], 0.5)).toEqual([1, null, null, 1])
  })
})
