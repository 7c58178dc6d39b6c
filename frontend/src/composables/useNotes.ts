import { onScopeDispose, ref, watch, type Ref } from 'vue'
import { api } from '../api/client'
import type { Note } from '../api/types'
import { asApiError, useResource } from './useResource'

const NOTES_INTERVAL = 5000

/**
 * A run's notes, oldest first, refreshed when `tick` changes (a change to the run), at
 * most every 5 s; `add` and `edit` write through the API and update the list in place.
 */
export function useNotes(runId: Ref<string>, tick: Ref<number>) {
  const notes = useResource((signal) => api.notes(runId.value, signal), [runId], {
    keepData: true,
  })
  const saving = ref(false)
  const saveError = ref('')

  // A run that logs sends a change every second; its notes are read again at most
  // every NOTES_INTERVAL ms (a note added on this page shows at once regardless).
  let last = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const refresh = () => {
    timer = null
    last = Date.now()
    void notes.reload()
  }
  watch(tick, () => {
    if (timer !== null) return
    timer = setTimeout(refresh, Math.max(0, last + NOTES_INTERVAL - Date.now()))
  })
  onScopeDispose(() => {
    if (timer !== null) clearTimeout(timer)
  })

  async function write(action: () => Promise<Note>): Promise<boolean> {
    saving.value = true
    saveError.value = ''
    try {
      const note = await action()
      const others = (notes.data.value ?? []).filter((n) => n.id !== note.id)
      notes.data.value = [...others, note].sort((a, b) => a.created_at - b.created_at)
      return true
    } catch (caught) {
      saveError.value = asApiError(caught).message
      return false
    } finally {
      saving.value = false
    }
  }

  return {
    notes: notes.data,
    status: notes.status,
    error: notes.error,
    saving,
    saveError,
    add: (text: string, step: number | null) => write(() => api.addNote(runId.value, text, step)),
    edit: (id: number, text: string) => write(() => api.editNote(id, text)),
  }
}
