import { describe, expect, it } from 'vitest'
import { rowWindow, scrollToRow } from '../virtual'

describe('rowWindow', () => {
  it('renders only the visible rows plus the overscan', () => {
    const w = rowWindow(0, 360, 36, 10_000, 5)
    expect(w.start).toBe(0)
    expect(w.end).toBe(16)
    expect(w.offset).toBe(0)
  })

  it('follows the scroll position deep into a long table', () => {
    const w = rowWindow(36 * 5000, 360, 36, 10_000, 5)
    expect(w.start).toBe(4995)
    expect(w.end).toBe(5016)
    expect(w.end - w.start).toBeLessThan(30)
    expect(w.offset).toBe(4995 * 36)
  })

  it('stops at the last row', () => {
    const w = rowWindow(36 * 10_000, 360, 36, 10_000, 5)
    expect(w.end).toBe(10_000)
    expect(w.start).toBeGreaterThan(9_980)
  })

  it('is empty for an empty table', () => {
    expect(rowWindow(0, 500, 36, 0)).toEqual({ start: 0, end: 0, offset: 0 })
  })
})

describe('scrollToRow', () => {
  it('scrolls only when the row is out of view', () => {
    expect(scrollToRow(3, 0, 360, 36)).toBeNull()
    expect(scrollToRow(20, 0, 360, 36)).toBe(21 * 36 - 360)
    expect(scrollToRow(2, 500, 360, 36)).toBe(72)
  })
})
