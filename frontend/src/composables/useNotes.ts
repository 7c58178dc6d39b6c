import { ref, watch, type Ref } from 'vue'
import { api } from '../api/client'
import type { Note } from '../api/types'
import { asApiError, useResource } from './useResource'

/**
 * A run's notes, oldest first, refreshed when `tick` changes (a change to the run);
 * `add` and `edit` write through the API and update the list in place.
 */
export function useNotes(runId: Ref<string>, tick: Ref<number>) {
  const notes = useResource((signal) => api.notes(runId.value, signal), [runId], {
    keepData: true,
  })
  const saving = ref(false)
  const saveError = ref('')
  watch(tick, () => void notes.reload())

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
