import { computed, ref, watchEffect, type ComputedRef, type Ref } from 'vue'

export type ThemeChoice = 'light' | 'dark' | 'system'

const STORAGE_KEY = 'labnotebook.theme'

function stored(): ThemeChoice {
  try {
    const value = localStorage.getItem(STORAGE_KEY)
    return value === 'light' || value === 'dark' ? value : 'system'
  } catch {
    return 'system'
  }
}

const choice = ref<ThemeChoice>(stored())
const systemDark = ref(false)
let started = false

function start(): void {
  if (started) return
  started = true
  const query = window.matchMedia?.('(prefers-color-scheme: dark)')
  if (query) {
    systemDark.value = query.matches
    query.addEventListener('change', (event) => {
      systemDark.value = event.matches
    })
  }
  watchEffect(() => {
    document.documentElement.dataset.theme = effective.value
    try {
      if (choice.value === 'system') localStorage.removeItem(STORAGE_KEY)
      else localStorage.setItem(STORAGE_KEY, choice.value)
    } catch {
      // Without storage the choice lasts for this page only.
    }
  })
}

const effective = computed<'light' | 'dark'>(() =>
  choice.value === 'system' ? (systemDark.value ? 'dark' : 'light') : choice.value,
)

/**
 * The colour theme: the system's preference unless the user picked one, which is
 * remembered in localStorage. One theme for the whole app.
 */
export function useTheme(): {
  choice: Ref<ThemeChoice>
  theme: ComputedRef<'light' | 'dark'>
  toggle: () => void
} {
  start()
  const toggle = () => {
    choice.value = effective.value === 'dark' ? 'light' : 'dark'
  }
  return { choice, theme: effective, toggle }
}

/** Read a CSS custom property of the current theme (charts draw with these colours). */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim()
}
