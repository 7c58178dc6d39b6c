import { describe, expect, it } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { useResource } from '../useResource'

/** Let the fetcher's promise settle and the watchers run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await nextTick()
}

describe('useResource', () => {
  it('keeps the data while the same source is read again', async () => {
    const id = ref('a')
    let version = 0
    const pending: ((value: string) => void)[] = []
    const scope = effectScope()
    const resource = scope.run(() =>
      useResource(() => new Promise<string>((resolve) => pending.push(resolve)), [id], {
        keepData: true,
      }),
    )!
    pending.shift()!(`a${version++}`)
    await settle()
    expect(resource.data.value).toBe('a0')

    void resource.reload()
    await settle()
    expect(resource.data.value).toBe('a0')
    pending.shift()!(`a${version++}`)
    await settle()
    expect(resource.data.value).toBe('a1')
    scope.stop()
  })

  it('clears kept data when the source changes, so another run never shows it', async () => {
    const id = ref('a')
    const pending: ((value: string) => void)[] = []
    const scope = effectScope()
    const resource = scope.run(() =>
      useResource(() => new Promise<string>((resolve) => pending.push(resolve)), [id], {
        keepData: true,
      }),
    )!
    pending.shift()!('data of a')
    await settle()
    expect(resource.data.value).toBe('data of a')

    id.value = 'b'
    await settle()
    expect(resource.data.value).toBeNull()
    expect(resource.status.value).toBe('loading')
    pending.shift()!('data of b')
    await settle()
    expect(resource.data.value).toBe('data of b')
    scope.stop()
  })
})
