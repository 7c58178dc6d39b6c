import { describe, expect, it } from 'vitest'
import { mount, RouterLinkStub } from '@vue/test-utils'
import type { Run } from '../../../api/types'
import RunsTable from '../RunsTable.vue'

function makeRun(i: number): Run {
  return {
    id: `run${i}`,
    experiment: 'exp',
    name: `<b>run ${i}</b>`,
    status: i % 2 ? 'running' : 'finished',
    params: { lr: i / 1000 },
    tags: ['<script>x</script>'],
    started_at: 1_700_000_000 + i,
    ended_at: null,
    heartbeat_at: null,
    updated_at: 0,
    host: '',
    pid: null,
    command: '',
    error: null,
    environment: null,
    metrics: {},
  }
}

function mountTable(total: number) {
  return mount(RunsTable, {
    props: {
      total,
      version: 0,
      rowAt: (i: number) => (i < total ? makeRun(i) : undefined),
      columns: [],
      sort: '',
      order: 'desc' as const,
      selected: [],
    },
    global: { stubs: { RouterLink: RouterLinkStub } },
  })
}

describe('RunsTable', () => {
  it('renders only a window of rows out of 10,000', () => {
    const wrapper = mountTable(10_000)
    const rows = wrapper.findAll('.body .row')
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.length).toBeLessThan(60)
    expect(wrapper.get('.body').attributes('style')).toContain(`height: ${10_000 * 36}px`)
    expect(wrapper.emitted('range')![0]).toEqual([0, rows.length])
  })

  it('moves the window when scrolled', async () => {
    const wrapper = mountTable(10_000)
    const scroller = wrapper.get('.table').element as HTMLElement
    scroller.scrollTop = 36 * 5000
    await wrapper.get('.table').trigger('scroll')
    const ids = wrapper.findAll('.body .row').map((r) => r.attributes('data-run-id'))
    expect(ids).toContain('run5000')
    expect(ids).not.toContain('run0')
  })

  it('opens the active run with Enter and selects it with Space', async () => {
    const wrapper = mountTable(100)
    const table = wrapper.get('.table')
    await table.trigger('keydown', { key: 'ArrowDown' })
    await table.trigger('keydown', { key: 'ArrowDown' })
    await table.trigger('keydown', { key: 'Enter' })
    expect(wrapper.emitted('open')![0]).toEqual(['run2'])
    await table.trigger('keydown', { key: ' ' })
    expect(wrapper.emitted('toggle')![0]).toEqual(['run2'])
  })

  it('gives every row the same tracks and width, whatever the length of its name', () => {
    const wrapper = mount(RunsTable, {
      props: {
        total: 3,
        version: 0,
        rowAt: (i: number) => ({ ...makeRun(i), name: 'N'.repeat(i * 200) }),
        columns: [],
        sort: '',
        order: 'desc' as const,
        selected: [],
      },
      global: { stubs: { RouterLink: RouterLinkStub } },
    })
    const rows = wrapper.findAll('.row') as { element: HTMLElement }[]
    expect(rows.length).toBe(4)
    const head = rows[0]!.element.style
    expect(head.minWidth).toBe('775px')
    for (const row of rows) {
      expect(row.element.style.gridTemplateColumns).toBe(head.gridTemplateColumns)
      expect(row.element.style.minWidth).toBe(head.minWidth)
    }
  })

  it('shows names and tags as text', () => {
    const wrapper = mountTable(3)
    expect(wrapper.find('.body b').exists()).toBe(false)
    expect(wrapper.find('.body script').exists()).toBe(false)
    expect(wrapper.text()).toContain('<b>run 0</b>')
  })

  it('asks to sort by a column when its header is clicked', async () => {
    const wrapper = mountTable(3)
    const name = wrapper.findAll('.head button').find((b) => b.text().startsWith('Name'))!
    await name.trigger('click')
    expect(wrapper.emitted('sort')![0]).toEqual(['name'])
  })
})
