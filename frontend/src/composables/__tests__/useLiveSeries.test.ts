import { describe, expect, it } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import type { SeriesSource } from '../../lib/sources'
import { useLiveSeries } from '../useLiveSeries'

/** A metric that gains `perTick` points each time the test says so. */
function fakeSource(perTick: number) {
  let logged = 10
  const calls: (number | null)[] = []
  const source: SeriesSource = {
    async history() {
      const x = Array.from({ length: logged }, (_, i) => i)
      return { x, y: x.map(Math.sin), lastStep: logged - 1 }
    },
    async after(step) {
      calls.push(step)
      const from = (step ?? -1) + 1
      const x = Array.from({ length: logged - from }, (_, i) => from + i)
      return { x, y: x.map(Math.sin), steps: x, more: false }
    },
    async range(start, stop) {
      const x = Array.from({ length: stop - start + 1 }, (_, i) => start + i)
      return { x, y: x.map(Math.cos) }
    },
  }
  return { source, calls, log: () => (logged += perTick) }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0))

describe('useLiveSeries', () => {
  // 360,000 steps: an hour at 100 steps/s, delivered 500 at a time.
  it('fetches only new points and keeps memory bounded over a long run', async () => {
    const fake = fakeSource(500)
    const tick = ref(0)
    const active = ref(true)
    const scope = effectScope()
    const live = scope.run(() =>
      useLiveSeries(ref(fake.source), tick, active, { historyPoints: 600, tailPoints: 300 }),
    )!
    await settle()
    expect(live.buffer.lastStep).toBe(9)

    let peak = 0
    for (let i = 0; i < 720; i++) {
      fake.log()
      tick.value += 1
      await nextTick()
      await settle()
      peak = Math.max(peak, live.buffer.length)
    }
    expect(live.buffer.lastStep).toBe(10 + 720 * 500 - 1)
    expect(peak).toBeLessThanOrEqual(601 + 300 + 500)
    expect(fake.calls[0]).toBe(9)
    expect(fake.calls[1]).toBe(509)
    scope.stop()
  })

  it('catches up when it becomes active again', async () => {
    const fake = fakeSource(50)
    const tick = ref(0)
    const active = ref(false)
    const scope = effectScope()
    const live = scope.run(() => useLiveSeries(ref(fake.source), tick, active))!
    await settle()
    fake.log()
    tick.value += 1
    await settle()
    expect(fake.calls).toEqual([])
    active.value = true
    await nextTick()
    await settle()
    expect(fake.calls).toEqual([9])
    expect(live.buffer.lastStep).toBe(59)
    scope.stop()
  })

  it('zooms into full detail and resets', async () => {
    const fake = fakeSource(0)
    const scope = effectScope()
    const live = scope.run(() => useLiveSeries(ref(fake.source), ref(0), ref(true)))!
    await settle()
    await live.zoom(2.4, 5.2)
    expect(live.zoomed.value?.x).toEqual([2, 3, 4, 5, 6])
    live.resetZoom()
    expect(live.zoomed.value).toBeNull()
    scope.stop()
  })
})
