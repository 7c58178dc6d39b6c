/**
 * Downsampling that loses no spike: the x range is cut into equal buckets and each
 * bucket keeps its lowest, highest and last point, in their original order. This is
 * what the server does in the database; the dashboard does the same to its live tail.
 */

/** Keep at most about `3 * buckets` points of (x, y); x must be ascending. */
export function downsampleMinMaxLast(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  buckets: number,
): { x: number[]; y: number[] } {
  const n = x.length
  if (n <= buckets * 3 || n < 2) return { x: Array.from(x), y: Array.from(y) }

  const x0 = x[0]!
  const width = (x[n - 1]! - x0) / buckets || 1
  const keep: number[] = [0]
  let bucket = -1
  let lo = -1
  let hi = -1
  let last = -1

  const flush = () => {
    if (last < 0) return
    const picked = [lo, hi, last].filter((i) => i >= 0).sort((a, b) => a - b)
    for (const i of picked) if (i !== keep[keep.length - 1]) keep.push(i)
  }

  for (let i = 1; i < n; i++) {
    const b = Math.min(buckets - 1, Math.floor((x[i]! - x0) / width))
    if (b !== bucket) {
      flush()
      bucket = b
      lo = hi = -1
    }
    const v = y[i]!
    if (!Number.isNaN(v)) {
      if (lo < 0 || v < y[lo]!) lo = i
      if (hi < 0 || v > y[hi]!) hi = i
    }
    last = i
  }
  flush()

  const outX = new Array<number>(keep.length)
  const outY = new Array<number>(keep.length)
  for (let k = 0; k < keep.length; k++) {
    outX[k] = x[keep[k]!]!
    outY[k] = y[keep[k]!]!
  }
  return { x: outX, y: outY }
}
