import { onBeforeUnmount, onMounted, watch, type Ref, type WatchSource } from 'vue'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { formatNumber } from '../lib/format'
import { cssVar } from './useTheme'

export interface UplotHandle {
  /** Redraw with fresh data on the next animation frame (many calls, one redraw). */
  draw: () => void
  /** The chart, when mounted. */
  chart: () => uPlot | null
}

/**
 * Space around the plot, in CSS pixels (top, right, bottom, left): room for the top y
 * label and the last x label. uPlot's automatic padding is 0 on the sides without an
 * axis while it first lays out a chart whose data it has not scaled yet, then grows:
 * the plot's height changes between its layout passes, the y ticks with it, and the y
 * axis could end up sized for labels narrower than the ones drawn, which were cut off
 * at the chart's left edge (`0.75` shown as `.75`). Fixed padding keeps the passes
 * consistent.
 */
const PADDING: uPlot.Padding = [17, 25, 0, 0]

/**
 * A uPlot chart in `el`: created once, on the first animation frame after mounting (and
 * again only when one of `rebuildOn` changes, such as the y scale type or the theme), fed
 * with `setData` at most once per animation frame, resized with its container, destroyed
 * on unmount.
 */
export function useUplot(
  el: Ref<HTMLElement | null>,
  options: () => Omit<uPlot.Options, 'width' | 'height'>,
  data: () => uPlot.AlignedData,
  rebuildOn: WatchSource[] = [],
  height = 220,
): UplotHandle {
  let chart: uPlot | null = null
  let frame = 0
  let resize: ResizeObserver | null = null

  function create(): void {
    chart?.destroy()
    chart = null
    if (!el.value) return
    const width = Math.max(200, el.value.clientWidth)
    chart = new uPlot({ padding: PADDING, ...options(), width, height }, data(), el.value)
  }

  function draw(): void {
    if (frame) return
    frame = requestAnimationFrame(() => {
      frame = 0
      if (chart) chart.setData(data())
      else create()
    })
  }

  // The chart is built on the first frame after mounting, so that a page of many
  // charts sends its data requests before it spends time building canvases.
  onMounted(() => {
    draw()
    resize = new ResizeObserver(() => {
      const width = el.value?.clientWidth ?? 0
      if (chart && width > 0 && Math.abs(width - chart.width) > 1) {
        chart.setSize({ width: Math.max(200, width), height })
      }
    })
    if (el.value) resize.observe(el.value)
  })
  watch(rebuildOn, create)
  onBeforeUnmount(() => {
    if (frame) cancelAnimationFrame(frame)
    resize?.disconnect()
    chart?.destroy()
    chart = null
  })

  return { draw, chart: () => chart }
}

/** The font of tick labels (uPlot's own), which `axisSize` measures. */
export const AXIS_FONT =
  '12px system-ui, -apple-system, "Segoe UI", Roboto, ' +
  '"Helvetica Neue", Arial, "Noto Sans", sans-serif'
/** Pixels between a y axis's labels and its plot: the tick (10) and the gap (5). */
const AXIS_TICK_AND_GAP = 15

/** Axis colours of the current theme, and the label font. */
export function axisStyle(): Pick<uPlot.Axis, 'stroke' | 'grid' | 'ticks' | 'font'> {
  const grid = cssVar('--chart-grid') || '#8884'
  return {
    stroke: cssVar('--muted') || '#888',
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1, size: 10 },
    font: AXIS_FONT,
  }
}

let measurer: CanvasRenderingContext2D | null | undefined

/**
 * Width in CSS pixels of `text` in the axis font, measured on a canvas; where there is
 * none, a generous 8 pixels per character.
 */
export function labelWidth(text: string): number {
  if (measurer === undefined) {
    measurer =
      typeof document === 'undefined' ? null : document.createElement('canvas').getContext('2d')
    if (measurer) measurer.font = AXIS_FONT
  }
  return measurer ? measurer.measureText(text).width : text.length * 8
}

/** Tick labels of a y axis; a log axis leaves some ticks unlabelled (null). */
export function tickLabels(_u: uPlot, ticks: (number | null)[]): string[] {
  return ticks.map((v) => (v === null || v === undefined ? '' : formatNumber(v)))
}

/** Tick labels of a step axis: steps are whole numbers, so fractional ticks stay blank. */
export function stepLabels(_u: uPlot, ticks: number[]): string[] {
  return ticks.map((v) => (Number.isInteger(v) ? String(v) : ''))
}

/**
 * Width of a y axis that fits its widest tick label, measured in the axis font: the
 * labels of a fixed number of characters per digit were cut off at the chart's edge in
 * wide fonts (`20000000` as `0000000`).
 */
export function axisSize(_u: uPlot, values: string[] | null): number {
  const widest = Math.max(labelWidth('0.0'), ...(values ?? []).map(labelWidth))
  return Math.ceil(Math.min(160, widest) + AXIS_TICK_AND_GAP + 2)
}

/** The n-th colour of the chart palette. */
export function seriesColor(n: number): string {
  return cssVar(`--chart-${(n % 8) + 1}`) || '#3b82f6'
}
