/** Which rows of a long fixed-row-height list are on screen (plus a margin). */
export interface RowWindow {
  /** First row to render. */
  start: number
  /** One past the last row to render. */
  end: number
  /** Pixels above the first rendered row. */
  offset: number
}

export function rowWindow(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  total: number,
  overscan = 8,
): RowWindow {
  if (total <= 0 || rowHeight <= 0) return { start: 0, end: 0, offset: 0 }
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight)
  const visible = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1
  const start = Math.max(0, Math.min(first, total - 1) - overscan)
  const end = Math.min(total, first + visible + overscan)
  return { start, end, offset: start * rowHeight }
}

/** The scrollTop that brings row `index` fully into view, or null when it already is. */
export function scrollToRow(
  index: number,
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
): number | null {
  const top = index * rowHeight
  if (top < scrollTop) return top
  if (top + rowHeight > scrollTop + viewportHeight) return top + rowHeight - viewportHeight
  return null
}
