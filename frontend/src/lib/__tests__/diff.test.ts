import { describe, expect, it } from 'vitest'
import { parseDiff } from '../diff'

const DIFF = [
  'diff --git a/train.py b/train.py',
  'index 1111111..2222222 100644',
  '--- a/train.py',
  '+++ b/train.py',
  '@@ -1,3 +1,3 @@',
  ' import torch',
  '-lr = 0.1',
  '+lr = 0.01',
  '--- not a header inside a hunk',
  '\\ No newline at end of file',
  'diff --git a/old.txt b/old.txt',
  'deleted file mode 100644',
  '--- a/old.txt',
  '+++ /dev/null',
  '@@ -1 +0,0 @@',
  '-gone',
  '',
].join('\n')

describe('parseDiff', () => {
  it('splits files and classifies lines', () => {
    const files = parseDiff(DIFF)
    expect(files.map((f) => f.path)).toEqual(['train.py', 'old.txt'])
    const [train, old] = files
    expect(train!.header).toEqual([
      'diff --git a/train.py b/train.py',
      'index 1111111..2222222 100644',
      '--- a/train.py',
      '+++ b/train.py',
    ])
    expect(train!.lines.map((l) => l.kind)).toEqual([
      'hunk',
      'context',
      'del',
      'add',
      'del',
      'meta',
    ])
    expect(train!.added).toBe(1)
    expect(train!.removed).toBe(2)
    expect(old!.lines).toEqual([
      { kind: 'hunk', text: '@@ -1 +0,0 @@' },
      { kind: 'del', text: '-gone' },
    ])
  })

  it('keeps quoted paths and ignores text before the first file', () => {
    const files = parseDiff('noise\ndiff --git "a/x y" "b/x y"\n@@ -1 +1 @@\n+a\n')
    expect(files).toHaveLength(1)
    expect(files[0]!.path).toBe('"a/x y" "b/x y"')
    expect(parseDiff('')).toEqual([])
  })
})
