// @vitest-environment jsdom
// DOMPurify is tested on jsdom: happy-dom parses some markup differently from browsers.
import { describe, expect, it } from 'vitest'
import { renderMarkdown } from '../markdown'

const PAYLOADS = [
  '<script>window.pwned = 1</script>',
  '<img src=x onerror="window.pwned=1">',
  '[click](javascript:window.pwned=1)',
  '<a href="javascript:window.pwned=1">x</a>',
  '<a href="JaVaScRiPt:window.pwned=1">x</a>',
  '<a href=" javascript:alert(1)">x</a>',
  '<iframe src="https://example.org"></iframe>',
  '<object data="x"></object><embed src="x">',
  '<style>body{display:none}</style>',
  '<p style="position:fixed">x</p>',
  '<svg onload="window.pwned=1"><circle/></svg>',
  '<math><mtext><img src=x onerror=alert(1)></mtext></math>',
  '<details open ontoggle="window.pwned=1">',
  '<form action="javascript:alert(1)"><button>go</button></form>',
  '![x](javascript:alert(1))',
  '<a href="data:text/html,<script>alert(1)</script>">x</a>',
  '<div onclick="alert(1)" onmouseover="alert(1)">hover</div>',
]

describe('renderMarkdown', () => {
  it('renders ordinary Markdown', () => {
    const html = renderMarkdown('# Title\n\n**bold** and `code` and [a link](https://example.org)')
    expect(html).toContain('<h1>Title</h1>')
    expect(html).toContain('<strong>bold</strong>')
    expect(html).toContain('<code>code</code>')
    expect(html).toContain('href="https://example.org"')
    expect(html).toContain('rel="noopener noreferrer nofollow"')
  })

  it.each(PAYLOADS)('leaves nothing executable in %s', (payload) => {
    const html = renderMarkdown(payload).toLowerCase()
    expect(html).not.toMatch(/<script|<iframe|<object|<embed|<style|<svg|<math|<form/)
    expect(html).not.toMatch(/\son[a-z]+\s*=/)
    expect(html).not.toContain('javascript:')
    expect(html).not.toContain('data:text/html')
    expect(html).not.toContain('style=')
  })

  it('keeps the text of removed markup visible as text', () => {
    const html = renderMarkdown('<b>kept</b> and 2 < 3')
    expect(html).toContain('2 &lt; 3')
  })
})
