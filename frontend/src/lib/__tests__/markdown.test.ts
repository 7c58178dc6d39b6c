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

  it('renders a stored picture as an img without src, to be fetched with the token', () => {
    const sha = 'ab'.repeat(32)
    const html = renderMarkdown(`Samples\n\n![grid \\[1\\] <b>&](sha256:${sha})`)
    const doc = new DOMParser().parseFromString(html, 'text/html')
    const img = doc.querySelector('img')!
    expect(img.getAttribute('data-sha256')).toBe(sha)
    expect(img.hasAttribute('src')).toBe(false)
    expect(img.getAttribute('alt')).toBe('grid [1] <b>&')
  })

  it.each([
    `![x](sha256:${'AB'.repeat(32)})`,
    `![x](sha256:${'ab'.repeat(31)})`,
    '![x](sha256:zz)',
    '![x](blob:https://example.org/1)',
    '![x](file:///etc/passwd)',
    `<img src="x" data-sha256="${'ab'.repeat(31)}">`,
    `<a data-sha256="${'ab'.repeat(32)}">x</a>`,
    `<img src="javascript:alert(1)" data-sha256="${'ab'.repeat(32)}x">`,
  ])('loads no other picture reference: %s', (markdown) => {
    const doc = new DOMParser().parseFromString(renderMarkdown(markdown), 'text/html')
    for (const node of doc.querySelectorAll('[data-sha256]')) {
      expect(node.tagName).toBe('IMG')
      expect(node.getAttribute('data-sha256')).toMatch(/^[0-9a-f]{64}$/)
    }
    for (const img of doc.querySelectorAll('img')) {
      expect(img.getAttribute('src') ?? '').not.toMatch(/^(?:blob|file|javascript|sha256):/i)
    }
  })

  it.each([
    ['![loss curve](https://example.org/loss.png)', 'loss curve', 'https://example.org/loss.png'],
    ['![](//example.org/a.png)', '//example.org/a.png', '//example.org/a.png'],
  ])('turns a picture on another site into a link: %s', (markdown, text, href) => {
    const doc = new DOMParser().parseFromString(renderMarkdown(markdown), 'text/html')
    expect(doc.querySelector('img')).toBeNull()
    const link = doc.querySelector('a')!
    expect(link.getAttribute('href')).toBe(href)
    expect(link.textContent).toBe(text)
    expect(link.getAttribute('rel')).toContain('noopener')
  })

  it('keeps the text of removed markup visible as text', () => {
    const html = renderMarkdown('<b>kept</b> and 2 < 3')
    expect(html).toContain('2 &lt; 3')
  })
})
