import { computed, type WritableComputedRef } from 'vue'
import { useRoute, useRouter, type LocationQueryRaw } from 'vue-router'

/**
 * View state kept in the URL query, so that a link reproduces what is on screen.
 * Writing replaces the current history entry; a value equal to the default is dropped
 * from the URL to keep links short.
 */
export function useRouteQuery(name: string, fallback = ''): WritableComputedRef<string> {
  const route = useRoute()
  const router = useRouter()
  return computed({
    get() {
      const value = route.query[name]
      const first = Array.isArray(value) ? value[0] : value
      return typeof first === 'string' ? first : fallback
    },
    set(value: string) {
      const query: LocationQueryRaw = { ...route.query }
      if (value === fallback || value === '') delete query[name]
      else query[name] = value
      void router.replace({ query })
    },
  })
}

/** A comma-separated list in the URL query (run ids, columns, hidden series). */
export function useRouteList(name: string): WritableComputedRef<string[]> {
  const raw = useRouteQuery(name)
  return computed({
    get: () => splitList(raw.value),
    set: (values: string[]) => {
      raw.value = joinList(values)
    },
  })
}

/**
 * Split a list written by `joinList`: items are separated by commas outside quotes, so a
 * field such as `params."a,b"` survives.
 */
export function splitList(text: string): string[] {
  const items: string[] = []
  let current = ''
  let quote: string | null = null
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote) {
      current += c
      if (c === '\\' && quote !== '`') current += text[++i] ?? ''
      else if (c === quote) quote = null
    } else if (c === '"' || c === "'" || c === '`') {
      quote = c
      current += c
    } else if (c === ',') {
      if (current) items.push(current)
      current = ''
    } else {
      current += c
    }
  }
  if (current) items.push(current)
  return items
}

export function joinList(values: readonly string[]): string {
  return values.filter((v) => v !== '').join(',')
}
