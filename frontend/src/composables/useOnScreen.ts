import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'

/** Whether `el` is within (or near) the viewport; charts off screen skip live updates. */
export function useOnScreen(el: Ref<HTMLElement | null>, margin = '200px'): Ref<boolean> {
  const onScreen = ref(true)
  let observer: IntersectionObserver | null = null
  onMounted(() => {
    if (!el.value || typeof IntersectionObserver === 'undefined') return
    observer = new IntersectionObserver(
      (entries) => {
        onScreen.value = entries.some((entry) => entry.isIntersecting)
      },
      { rootMargin: margin },
    )
    observer.observe(el.value)
  })
  onBeforeUnmount(() => observer?.disconnect())
  return onScreen
}
