import { afterEach, describe, expect, it, vi } from 'vitest'
import { prefetch, takePrefetched } from '../prefetch'

afterEach(() => vi.useRealTimers())

describe('prefetch', () => {
  it('hands a waiting answer over once', async () => {
    const load = vi.fn(async () => 42)
    void prefetch('a', load)
    void prefetch('a', load)
    expect(load).toHaveBeenCalledTimes(1)
    expect(await takePrefetched<number>('a')).toBe(42)
    expect(takePrefetched('a')).toBeNull()
  })

  it('drops answers not taken in time', () => {
    vi.useFakeTimers()
    void prefetch('b', async () => 1)
    vi.advanceTimersByTime(6000)
    expect(takePrefetched('b')).toBeNull()
  })
})
