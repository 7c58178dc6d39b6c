import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { setToken } from '../../api/client'
import type { Artifact } from '../../api/types'
import { formatSize, imageSeries, useArtifacts, useBlobUrls } from '../useArtifacts'

const SHA = (n: number) => n.toString(16).padStart(64, '0')

function artifact(id: number, name: string, step: number | null, extra: Partial<Artifact> = {}) {
  return {
    id,
    run_id: 'r1',
    kind: 'image',
    name,
    step,
    size: 10,
    sha256: SHA(id),
    media_type: 'image/png',
    created_at: id,
    meta: { width: 2, height: 2 },
    ...extra,
  } as Artifact
}

interface Call {
  url: string
  auth: string | null
}

function serve(artifacts: Artifact[] = []): Call[] {
  const calls: Call[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string, init: RequestInit = {}) => {
      const headers = new Headers(init.headers)
      calls.push({ url, auth: headers.get('Authorization') })
      if (url.includes('/blobs/')) {
        if (url.endsWith(SHA(404))) {
          return Response.json(
            { error: { code: 'not_found', message: 'no such blob' } },
            {
              status: 404,
            },
          )
        }
        return new Response(new Blob(['png']), { headers: { 'Content-Type': 'image/png' } })
      }
      return Response.json({ artifacts })
    }),
  )
  return calls
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0))
let created = 0
const revoked: string[] = []

beforeEach(() => {
  created = 0
  revoked.length = 0
  vi.spyOn(URL, 'createObjectURL').mockImplementation(() => `blob:test/${++created}`)
  vi.spyOn(URL, 'revokeObjectURL').mockImplementation((url) => void revoked.push(url))
})

afterEach(() => {
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
  vi.useRealTimers()
  setToken('')
})

describe('imageSeries', () => {
  it('groups pictures by name, ordered by step then time, without note pictures', () => {
    const series = imageSeries([
      artifact(1, 'b', 5),
      artifact(2, 'a', 9),
      artifact(3, 'a', 1),
      artifact(4, 'a', null),
      artifact(5, 'note-1', 2, { meta: { note: true } }),
      artifact(6, 'weights', 3, { kind: 'checkpoint' }),
      artifact(7, 'a', 1),
    ])
    expect(series.map((s) => s.name)).toEqual(['a', 'b'])
    expect(series[0]!.images.map((a) => a.id)).toEqual([4, 3, 7, 2])
    expect(imageSeries(null)).toEqual([])
  })
})

describe('useBlobUrls', () => {
  it('fetches with the token, caches, and revokes every URL on unmount', async () => {
    const calls = serve()
    setToken('secret')
    const scope = effectScope()
    const blobs = scope.run(() => useBlobUrls())!

    const first = await blobs.url('r1', SHA(1))
    expect(first).toBe('blob:test/1')
    expect(await blobs.url('r1', SHA(1))).toBe(first)
    expect(calls).toEqual([{ url: `/api/v1/runs/r1/blobs/${SHA(1)}`, auth: 'Bearer secret' }])

    await blobs.url('r1', SHA(2))
    scope.stop()
    await settle()
    expect(revoked.sort()).toEqual(['blob:test/1', 'blob:test/2'])
  })

  it('revokes the least recently used past its limit', async () => {
    serve()
    const scope = effectScope()
    const blobs = scope.run(() => useBlobUrls(2))!
    await blobs.url('r1', SHA(1))
    await blobs.url('r1', SHA(2))
    await blobs.url('r1', SHA(1)) // used again: SHA(2) is now the oldest
    await blobs.url('r1', SHA(3))
    await settle()
    expect(revoked).toEqual(['blob:test/2'])
    scope.stop()
  })

  it('refuses what is not a sha256, and does not cache a failure', async () => {
    const calls = serve()
    const scope = effectScope()
    const blobs = scope.run(() => useBlobUrls())!
    await expect(blobs.url('r1', '../../runs')).rejects.toThrow('not a sha256')
    await expect(blobs.url('r1', SHA(404))).rejects.toThrow('no such blob')
    await expect(blobs.url('r1', SHA(404))).rejects.toThrow('no such blob')
    expect(calls).toHaveLength(2)
    scope.stop()
  })
})

describe('useArtifacts', () => {
  it('lists the artifacts, read again at most every 5 s while the run changes', async () => {
    vi.useFakeTimers()
    const calls = serve([artifact(1, 'a', 0)])
    const tick = ref(0)
    const scope = effectScope()
    const state = scope.run(() => useArtifacts(ref('r1'), tick))!
    await vi.advanceTimersByTimeAsync(0)
    expect(state.artifacts.value?.map((a) => a.name)).toEqual(['a'])
    expect(calls.map((c) => c.url)).toEqual(['/api/v1/runs/r1/artifacts'])

    for (let i = 1; i <= 10; i++) {
      tick.value = i
      await nextTick()
      await vi.advanceTimersByTimeAsync(1000)
    }
    expect(calls.length).toBeLessThanOrEqual(4)
    expect(calls.length).toBeGreaterThanOrEqual(2)
    scope.stop()
  })
})

describe('formatSize', () => {
  it.each([
    [0, '0 B'],
    [999, '999 B'],
    [1500, '1.5 kB'],
    [12_345_678, '12 MB'],
    [3.2e9, '3.2 GB'],
  ])('%d bytes is %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text)
  })
})
