import { onScopeDispose, ref, type Ref } from 'vue'

/** Whether the browser tab is visible; live updates pause while it is hidden. */
export function useDocumentVisible(): Ref<boolean> {
  const visible = ref(document.visibilityState !== 'hidden')
  const update = () => {
    visible.value = document.visibilityState !== 'hidden'
  }
  document.addEventListener('visibilitychange', update)
  onScopeDispose(() => document.removeEventListener('visibilitychange', update))
  return visible
}
