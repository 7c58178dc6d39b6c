/** Exponential moving average with start-up bias correction; NaN and gaps pass through. */
export function ema(y: readonly (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return y.slice()
  const w = Math.min(weight, 0.999)
  const out = new Array<number | null>(y.length)
  let acc = 0
  let n = 0
  for (let i = 0; i < y.length; i++) {
    const v = y[i]
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = null
      continue
    }
    acc = acc * w + (1 - w) * v
    n += 1
    out[i] = acc / (1 - Math.pow(w, n))
  }
  return out
}

/** Values a chart can draw: non-finite values (and non-positive ones on a log axis) are gaps. */
export function plottable(y: readonly number[], log: boolean): (number | null)[] {
  const out = new Array<number | null>(y.length)
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!
    out[i] = Number.isFinite(v) && (!log || v > 0) ? v : null
  }
  return out
}
