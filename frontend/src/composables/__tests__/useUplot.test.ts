import { describe, expect, it, vi } from 'vitest'
import type uPlot from 'uplot'
import { AXIS_FONT, axisSize } from '../useUplot'

describe('axisSize', () => {
  it('fits the widest label as the axis font draws it, plus the tick and gap', () => {
    const fonts: string[] = []
    // A font whose digits are 10 pixels wide, wider than any fixed guess per character.
    const context = {
      set font(value: string) {
        fonts.push(value)
      },
      measureText: (text: string) => ({ width: text.length * 10 }),
    }
    vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(
      context as unknown as CanvasRenderingContext2D,
    )
    const u = {} as uPlot
    expect(axisSize(u, ['0', '50000000', '100000000'])).toBe(90 + 15 + 2)
    expect(fonts).toEqual([AXIS_FONT])
    // Short labels (and none yet) still leave room for three characters.
    expect(axisSize(u, ['1'])).toBe(30 + 17)
    expect(axisSize(u, null)).toBe(30 + 17)
    // A label that long is cut rather than squeezing the plot to nothing.
    expect(axisSize(u, ['1'.repeat(40)])).toBe(160 + 17)
  })
})
