import { describe, expect, it } from 'vitest'
import { isSystemMetric, splitSystemKeys } from '../system'

describe('system metrics', () => {
  it('are the keys under sys/', () => {
    expect(isSystemMetric('sys/cpu_percent')).toBe(true)
    expect(isSystemMetric('sys/gpu0/utilization')).toBe(true)
    expect(isSystemMetric('system/loss')).toBe(false)
    expect(isSystemMetric('val/sys/loss')).toBe(false)
    expect(isSystemMetric('sys')).toBe(false)
  })

  it('are split from the training metrics, each group sorted', () => {
    const keys = ['sys/memory_percent', 'loss', 'sys/cpu_percent', 'acc', 'val/loss']
    expect(splitSystemKeys(keys)).toEqual({
      training: ['acc', 'loss', 'val/loss'],
      system: ['sys/cpu_percent', 'sys/memory_percent'],
    })
    expect(splitSystemKeys([])).toEqual({ training: [], system: [] })
  })
})
