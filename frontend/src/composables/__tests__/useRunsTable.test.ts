import { afterEach, describe, expect, it, vi } from 'vitest'
import { effectScope, ref } from 'vue'
import type { RunQuery } from '../../api/client'
import { PAGE_SIZE, useRunsTable } from '../useRunsTable'

const TOTAL = 10_000

function run(i: number, name = `run-${i}`) {
  return { id: `id${i}`, name, params: {}, tags: [], metrics: {}, status: 'finished' }
}

/** A fake server of TOTAL runs; records the URLs asked for. */
function serve(): string[] {
  const urls: string[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      urls.push(url)
      const u = new URL(url, 'http://x')
      if (u.pathname.startsWith('/api/v1/runs/')) {
        const id = u.pathname.split('/').pop()!
        return Response.json(run(Number(id.slice(2)), 'renamed'))
      }
      const offset = Number(u.searchParams.get('offset'))
      const limit = Number(u.searchParams.get('limit'))
      const runs = Array.from({ length: Math.min(limit, TOTAL - offset) }, (_, i) =>
        run(offset + i),
      )
      return Response.json({ runs, total: TOTAL, limit, offset })
    }),
  )
  return urls
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0))

afterEach(() => vi.unstubAllGlobals())

describe('useRunsTable', () => {
  it('loads the first page, then only the pages scrolled to', async () => {
    const urls = serve()
    const scope = effectScope()
    const table = scope.run(() => useRunsTable(ref<RunQuery>({ where: 'x > 1' })))!
    await settle()
    expect(table.total.value).toBe(TOTAL)
    expect(urls).toHaveLength(1)
    expect(urls[0]).toContain('where=x+%3E+1')
    expect(table.rowAt(0)?.id).toBe('id0')
    expect(table.rowAt(PAGE_SIZE)).toBeUndefined()

    table.ensure(5000, 5030)
    await settle()
    expect(urls).toHaveLength(2)
    expect(urls[1]).toContain(`offset=${Math.floor(5000 / PAGE_SIZE) * PAGE_SIZE}`)
    expect(table.rowAt(5010)?.id).toBe('id5010')
    scope.stop()
  })

  it('fetches a changed run alone, and reloads the page for a new run or a reset', async () => {
    const urls = serve()
    const scope = effectScope()
    const table = scope.run(() => useRunsTable(ref<RunQuery>({})))!
    await settle()
    table.ensure(0, 30)

    await table.applyChanges([{ id: 'id3', updated_at: 1, status: 'finished' }])
    expect(urls.at(-1)).toBe('/api/v1/runs/id3')
    expect(table.rowAt(3)?.name).toBe('renamed')

    await table.applyChanges([{ id: 'new', updated_at: 1, status: 'running' }])
    await settle()
    expect(urls.at(-1)).toContain('/api/v1/runs?limit=200&offset=0')

    const before = urls.length
    await table.applyChanges([], true)
    await settle()
    expect(urls.length).toBe(before + 1)
    expect(urls.at(-1)).toContain('/api/v1/runs?limit=200&offset=0')
    scope.stop()
  })
})
