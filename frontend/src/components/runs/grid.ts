/** A column of the runs table: at least `min` pixels, plus `share` of the room left. */
export interface GridColumn {
  min: number
  share: number
}

/**
 * The tracks and the width of a row of the runs table. Every row gets the same, so
 * the columns line up whatever the rows hold; the width is the columns' minimums at
 * least, so that many columns make the table scroll rather than squeeze.
 */
export function gridLayout(columns: readonly GridColumn[]): {
  gridTemplateColumns: string
  minWidth: string
} {
  const tracks = columns.map((c) => (c.share ? `minmax(${c.min}px, ${c.share}fr)` : `${c.min}px`))
  const total = columns.reduce((sum, c) => sum + c.min, 0)
  return { gridTemplateColumns: tracks.join(' '), minWidth: `${total}px` }
}
