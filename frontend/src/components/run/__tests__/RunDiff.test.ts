import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import RunDiff from '../RunDiff.vue'

function fileDiff(name: string, added: number): string {
  const lines = Array.from({ length: added }, (_, i) => `+line ${i}`)
  return [`diff --git a/${name} b/${name}`, `@@ -0,0 +1,${added} @@`, ...lines, ''].join('\n')
}

describe('RunDiff', () => {
  it('shows the first 2,000 lines of a long file, and all of them on request', async () => {
    const wrapper = mount(RunDiff, { props: { diff: fileDiff('big.py', 2500) } })
    expect(wrapper.findAll('.line.add')).toHaveLength(1999)
    const more = wrapper.get('button.more')
    expect(more.text()).toBe('Show all 2501 lines')
    await more.trigger('click')
    expect(wrapper.findAll('.line.add')).toHaveLength(2500)
    expect(wrapper.find('button.more').exists()).toBe(false)
  })

  it('starts later files closed, without their lines, once many lines are shown', async () => {
    const diff = ['a', 'b', 'c', 'd'].map((name) => fileDiff(`${name}.py`, 1900)).join('')
    const wrapper = mount(RunDiff, { props: { diff } })
    const files = wrapper.findAll('details.file')
    expect(files.map((f) => (f.element as HTMLDetailsElement).open)).toEqual([
      true,
      true,
      true,
      false,
    ])
    expect(files[3]!.find('.lines').exists()).toBe(false)
    ;(files[3]!.element as HTMLDetailsElement).open = true
    await files[3]!.trigger('toggle')
    expect(files[3]!.findAll('.line.add')).toHaveLength(1900)
    expect(files[3]!.get('summary').text()).toContain('d.py')
  })
})
