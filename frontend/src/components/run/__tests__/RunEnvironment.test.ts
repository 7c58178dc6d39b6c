import { describe, expect, it } from 'vitest'
import { mount, type VueWrapper } from '@vue/test-utils'
import type { Json } from '../../../api/types'
import RunEnvironment from '../RunEnvironment.vue'

const XSS = '<img src=x onerror="window.pwned=1">'

const ENVIRONMENT: Record<string, Json> = {
  code: {
    script: '/work/train.py',
    argv: ['/work/train.py', '--lr', '0.1'],
    notebook: null,
    commit: 'a'.repeat(40),
    branch: 'main',
    remote: 'https://github.com/lab/model.git',
    dirty: true,
    untracked: ['notes.txt'],
    diff:
      'diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n' +
      `@@ -1 +1 @@\n-lr = 0.1\n+${XSS}\n`,
    diff_truncated: true,
  },
  python: { version: '3.11.7', implementation: 'CPython', executable: '/usr/bin/python3' },
  platform: { platform: 'Linux-6.1-x86_64' },
  packages: { torch: '2.13.0', numpy: '2.1.0', 'numpy-stl': '3.0' },
  host: {
    hostname: 'gpu-box',
    cpu: 'AMD EPYC',
    cpu_count: 64,
    ram: 2 ** 36,
    gpus: [{ index: 0, name: 'NVIDIA A100', memory: 2 ** 35, driver: '550.54' }, { index: 1 }],
  },
}

/** Open a section as a click on its summary does: set `open`, then fire `toggle`. */
async function openSection(wrapper: VueWrapper, selector: string): Promise<void> {
  const details = wrapper.get(selector)
  ;(details.element as HTMLDetailsElement).open = true
  await details.trigger('toggle')
}

describe('RunEnvironment', () => {
  it('shows the git state and the diff with added and removed lines', async () => {
    const wrapper = mount(RunEnvironment, { props: { environment: ENVIRONMENT } })
    expect(wrapper.find('.line').exists()).toBe(false)
    await openSection(wrapper, 'details.code')
    const code = wrapper.get('details.code')
    expect(code.text()).toContain('a'.repeat(40))
    expect(code.text()).toContain('https://github.com/lab/model.git')
    expect(code.text()).toContain('uncommitted changes')
    expect(code.text()).toContain('cut at the size limit')
    expect(wrapper.get('.line.del').text()).toBe('-lr = 0.1')
    expect(wrapper.get('.line.add').text()).toBe(`+${XSS}`)
    expect(wrapper.get('.line.hunk').text()).toBe('@@ -1 +1 @@')
    expect(wrapper.find('img').exists()).toBe(false)
  })

  it('filters packages by name', async () => {
    const wrapper = mount(RunEnvironment, { props: { environment: ENVIRONMENT } })
    const names = () => wrapper.findAll('.packages td:first-child').map((td) => td.text())
    expect(names()).toEqual([])
    await openSection(wrapper, 'details.packages')
    expect(names()).toEqual(['numpy', 'numpy-stl', 'torch'])
    await wrapper.get('.packages input').setValue('NumPy')
    expect(names()).toEqual(['numpy', 'numpy-stl'])
    await wrapper.get('.packages input').setValue('jax')
    expect(wrapper.get('.packages').text()).toContain('No package matches.')
  })

  it('shows host and memory, and says when nothing was captured', () => {
    const wrapper = mount(RunEnvironment, { props: { environment: ENVIRONMENT } })
    expect(wrapper.text()).toContain('gpu-box')
    expect(wrapper.text()).toContain('64.0 GiB')
    expect(wrapper.text()).toContain('NVIDIA A100, 32.0 GiB, driver 550.54')
    expect(wrapper.text()).not.toContain('No NVIDIA GPU found.')
    const noGpu = mount(RunEnvironment, { props: { environment: { host: { hostname: 'cpu' } } } })
    expect(noGpu.text()).toContain('No NVIDIA GPU found.')
    const empty = mount(RunEnvironment, { props: { environment: null } })
    expect(empty.text()).toContain('No code or environment was captured')
  })

  it('survives malformed data from a foreign client', () => {
    const odd: Record<string, Json> = {
      code: { argv: 'x', untracked: { a: 1 }, commit: 5, diff: 7 },
      packages: [],
      host: { gpus: 'none' },
    }
    const wrapper = mount(RunEnvironment, { props: { environment: odd } })
    expect(wrapper.text()).toContain('Commit')
  })
})
