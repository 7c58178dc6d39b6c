import { describe, expect, it } from 'vitest'
import type { Run } from '../../api/types'
import {
  availableFields,
  fieldValue,
  metricField,
  paramField,
  parseField,
  splitField,
} from '../fields'
import { splitList, joinList } from '../../composables/useRouteQuery'

const run = {
  id: 'r1',
  name: 'n',
  experiment: 'e',
  status: 'finished',
  params: { optim: { lr: 0.1, 'beta.1': 0.9 }, layers: [1, 2] },
  tags: [],
  started_at: 100,
  ended_at: 160,
  heartbeat_at: 160,
  updated_at: 160,
  host: '',
  pid: null,
  command: '',
  error: null,
  environment: null,
  metrics: { 'val/loss': { count: 2, last: 0.5, last_step: 1, last_time: 1, min: 0.4, max: 0.9 } },
} as Run

describe('fields', () => {
  it('writes keys that are not bare names as quoted strings', () => {
    expect(paramField(['optim', 'lr']).text).toBe('params.optim.lr')
    expect(paramField(['optim', 'beta.1']).text).toBe('params.optim."beta.1"')
    expect(paramField(['and']).text).toBe('params."and"')
    expect(metricField('val/loss', 'min').text).toBe('metrics.val/loss.min')
  })

  it('parses what it writes', () => {
    expect(splitField('params.optim."beta.1"')).toEqual(['params', 'optim', 'beta.1'])
    expect(parseField('metrics.val/loss.max')).toMatchObject({ path: ['val/loss'], summary: 'max' })
  })

  it('computes values from the run when the server sent none', () => {
    expect(fieldValue(run, parseField('params.optim."beta.1"'))).toBe(0.9)
    expect(fieldValue(run, parseField('metrics.val/loss.min'))).toBe(0.4)
    expect(fieldValue(run, parseField('duration'))).toBe(60)
    expect(
      fieldValue({ ...run, values: { 'params.optim.lr': 7 } }, parseField('params.optim.lr')),
    ).toBe(7)
  })

  it('offers every param leaf and metric summary as a column', () => {
    const { params, metrics } = availableFields([run])
    expect(params.map((f) => f.text)).toEqual([
      'params.layers',
      'params.optim."beta.1"',
      'params.optim.lr',
    ])
    expect(metrics.map((f) => f.text)).toContain('metrics.val/loss.count')
  })

  it('keeps quoted commas inside one list item in the URL', () => {
    const items = ['params."a,b"', 'metrics.loss.min']
    expect(splitList(joinList(items))).toEqual(items)
  })
})
