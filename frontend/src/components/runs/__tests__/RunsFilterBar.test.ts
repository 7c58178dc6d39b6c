import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { ApiError } from '../../../api/client'
import RunsFilterBar from '../RunsFilterBar.vue'

describe('RunsFilterBar', () => {
  it('shows the server message with a caret under the column it names', () => {
    const filter = 'params.lr < and x'
    const error = new ApiError(400, 'invalid_filter', 'expected a value after <', { column: 13 })
    const wrapper = mount(RunsFilterBar, { props: { modelValue: filter, error } })
    const alert = wrapper.get('[role="alert"]')
    expect(alert.text()).toContain('expected a value after <')
    const caret = wrapper.get('.caret').text()
    expect(caret).toBe('^')
    expect(wrapper.get('.caret').element.textContent).toBe(' '.repeat(12) + '^')
    expect(wrapper.get('input').attributes('aria-invalid')).toBe('true')
  })

  it('shows no error for other failures and applies the filter on submit', async () => {
    const error = new ApiError(500, 'internal', 'boom')
    const wrapper = mount(RunsFilterBar, { props: { modelValue: '', error } })
    expect(wrapper.find('[role="alert"]').exists()).toBe(false)
    await wrapper.get('input').setValue('  status = "running" ')
    await wrapper.get('form').trigger('submit')
    expect(wrapper.emitted('update:modelValue')![0]).toEqual(['status = "running"'])
  })

  it('renders the filter text inert', () => {
    const filter = '<img src=x onerror="window.pwned=1">'
    const error = new ApiError(400, 'invalid_filter', '<b>bad</b>', { column: 1 })
    const wrapper = mount(RunsFilterBar, { props: { modelValue: filter, error } })
    expect(wrapper.find('img').exists()).toBe(false)
    expect(wrapper.find('b').exists()).toBe(false)
    expect(wrapper.text()).toContain('<img src=x')
  })
})
