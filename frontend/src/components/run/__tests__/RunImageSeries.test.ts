import { describe, expect, it } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { ApiError } from '../../../api/client'
import type { Artifact } from '../../../api/types'
import RunImageSeries from '../RunImageSeries.vue'

function picture(step: number, sha: string): Artifact {
  return {
    id: step + 1,
    run_id: 'r1',
    kind: 'image',
    name: 'samples',
    step,
    size: 70,
    sha256: sha,
    media_type: 'image/png',
    created_at: 1_700_000_000 + step,
    meta: { width: 4, height: 4 },
  }
}

describe('RunImageSeries', () => {
  it("says why a picture could not be loaded, in the server's words", async () => {
    const missing = 'the bytes of samples are missing from the server artifact store'
    const wrapper = mount(RunImageSeries, {
      props: {
        name: 'samples',
        images: [picture(0, 'a'.repeat(64)), picture(1, 'b'.repeat(64))],
        load: (sha: string) =>
          sha.startsWith('b')
            ? Promise.reject(new ApiError(404, 'blob_missing', missing))
            : Promise.resolve('blob:ok'),
      },
    })
    await flushPromises()
    expect(wrapper.get('[role="alert"]').text()).toBe(`The picture could not be loaded: ${missing}`)
    expect(wrapper.find('img').exists()).toBe(false)

    // Going back to a picture that loads shows it.
    await wrapper.get('input[type="range"]').setValue('0')
    await flushPromises()
    expect(wrapper.find('[role="alert"]').exists()).toBe(false)
    expect(wrapper.get('img').attributes('src')).toBe('blob:ok')
  })
})
