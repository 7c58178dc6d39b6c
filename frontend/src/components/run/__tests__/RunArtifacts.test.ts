import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import type { Artifact } from '../../../api/types'
import RunArtifacts from '../RunArtifacts.vue'

function artifact(
  id: number,
  kind: Artifact['kind'] = 'image',
  meta: Artifact['meta'] = {},
): Artifact {
  return {
    id,
    run_id: 'r1',
    kind,
    name: `picture-${id}`,
    step: id,
    size: 70,
    sha256: id.toString(16).padStart(64, '0'),
    media_type: 'image/png',
    created_at: 1_700_000_000 + id,
    meta,
  }
}

describe('RunArtifacts', () => {
  it('draws the latest 200 rows of a long list, and all of them on request', async () => {
    const many = Array.from({ length: 1250 }, (_, i) => artifact(i + 1))
    const wrapper = mount(RunArtifacts, { props: { artifacts: many, error: '' } })
    const rows = wrapper.findAll('tbody tr')
    expect(rows).toHaveLength(200)
    expect(rows[0]?.attributes('data-artifact-id')).toBe('1051')
    expect(rows[199]?.attributes('data-artifact-id')).toBe('1250')
    const more = wrapper.get('button.more')
    expect(more.text()).toBe('Show 1,050 earlier artifacts')
    await more.trigger('click')
    expect(wrapper.findAll('tbody tr')).toHaveLength(1250)
    expect(wrapper.find('button.more').exists()).toBe(false)
  })

  it("shows a folder's size as that of its files", () => {
    const folder = artifact(1, 'folder', { files: 2, total_size: 2_500_000 })
    const wrapper = mount(RunArtifacts, { props: { artifacts: [folder], error: '' } })
    expect(wrapper.get('tbody tr').text()).toContain('2.5 MB')
    expect(wrapper.find('button.more').exists()).toBe(false)
  })

  it('says when there is nothing, or what went wrong', () => {
    const empty = mount(RunArtifacts, { props: { artifacts: [], error: '' } })
    expect(empty.text()).toContain('No files yet')
    expect(empty.find('table').exists()).toBe(false)
    const failed = mount(RunArtifacts, { props: { artifacts: null, error: 'server down' } })
    expect(failed.get('[role="alert"]').text()).toBe('server down')
    expect(failed.find('table').exists()).toBe(false)
  })
})
