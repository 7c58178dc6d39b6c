import { describe, expect, it } from 'vitest'
import { gridLayout } from '../grid'

describe('gridLayout', () => {
  it('gives fixed and shared tracks, and the minimums as the width', () => {
    expect(
      gridLayout([
        { min: 36, share: 0 },
        { min: 160, share: 2 },
        { min: 110, share: 1 },
      ]),
    ).toEqual({
      gridTemplateColumns: '36px minmax(160px, 2fr) minmax(110px, 1fr)',
      minWidth: '306px',
    })
  })

  it('is empty without columns', () => {
    expect(gridLayout([])).toEqual({ gridTemplateColumns: '', minWidth: '0px' })
  })
})
