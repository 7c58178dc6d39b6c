/** A unified diff (`git diff`) split into files and classified lines, for display. */

export type DiffLineKind = 'add' | 'del' | 'hunk' | 'context' | 'meta'

export interface DiffLine {
  kind: DiffLineKind
  text: string
}

export interface DiffFile {
  /** The file's path (the new one; the old one for a deleted file). */
  path: string
  /** The `diff --git` line and the extended header lines under it. */
  header: string[]
  lines: DiffLine[]
  added: number
  removed: number
}

const GIT_HEADER = /^diff --git a\/(.*) b\/(.*)$/

/** Files of a unified diff; text before the first `diff --git` line is dropped. */
export function parseDiff(text: string): DiffFile[] {
  const files: DiffFile[] = []
  let file: DiffFile | null = null
  let inHunk = false
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  for (const line of lines) {
    if (line.startsWith('diff --git ')) {
      const path = GIT_HEADER.exec(line)?.[2] ?? line.slice(11)
      file = { path, header: [line], lines: [], added: 0, removed: 0 }
      files.push(file)
      inHunk = false
      continue
    }
    if (!file) continue
    if (line.startsWith('@@')) {
      inHunk = true
      file.lines.push({ kind: 'hunk', text: line })
    } else if (!inHunk) {
      file.header.push(line)
      if (line.startsWith('+++ b/')) file.path = line.slice(6)
    } else if (line.startsWith('+')) {
      file.added += 1
      file.lines.push({ kind: 'add', text: line })
    } else if (line.startsWith('-')) {
      file.removed += 1
      file.lines.push({ kind: 'del', text: line })
    } else if (line.startsWith('\\')) {
      file.lines.push({ kind: 'meta', text: line })
    } else {
      file.lines.push({ kind: 'context', text: line })
    }
  }
  return files
}
