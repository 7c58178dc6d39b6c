/**
 * System metrics: CPU, memory, disk, network and GPU use that the Python client samples
 * while a run is active, logged as `sys/...` metrics on their own step counter (the
 * sample index), apart from the training steps.
 */
export const SYSTEM_PREFIX = 'sys/'

export function isSystemMetric(key: string): boolean {
  return key.startsWith(SYSTEM_PREFIX)
}

/** A run's metric keys split into training metrics and system metrics, each sorted. */
export function splitSystemKeys(keys: Iterable<string>): { training: string[]; system: string[] } {
  const training: string[] = []
  const system: string[] = []
  for (const key of keys) (isSystemMetric(key) ? system : training).push(key)
  return { training: training.sort(), system: system.sort() }
}
