/**
 * Notes are Markdown written by users. They are rendered with marked, then sanitised
 * with DOMPurify under a strict allow-list: the only HTML the dashboard ever inserts
 * with `v-html` is what `renderMarkdown` returns.
 */
import DOMPurify from 'dompurify'
import { marked } from 'marked'

const ALLOWED_TAGS = [
  'a',
  'blockquote',
  'br',
  'code',
  'del',
  'em',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'hr',
  'img',
  'li',
  'ol',
  'p',
  'pre',
  's',
  'strong',
  'table',
  'tbody',
  'td',
  'th',
  'thead',
  'tr',
  'ul',
]

const ALLOWED_ATTR = ['href', 'title', 'alt', 'src', 'start', 'align']

/** Links and images may point only to http(s), mailto, or a path on this server. */
const SAFE_URL = /^(?:https?:|mailto:|[/#?.]|[^:/?#]*(?:[/?#]|$))/i

let hooked = false

function purifier(): typeof DOMPurify {
  if (!hooked) {
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A') {
        node.setAttribute('target', '_blank')
        node.setAttribute('rel', 'noopener noreferrer nofollow')
      }
    })
    hooked = true
  }
  return DOMPurify
}

/** Sanitise HTML with the notes' allow-list: no scripts, handlers, styles or embeds. */
export function sanitizeHtml(html: string): string {
  // Without a DOM to sanitise in, show the source as text rather than trust it.
  if (!DOMPurify.isSupported) return escapeHtml(html)
  return purifier().sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: SAFE_URL,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ADD_ATTR: ['target', 'rel'],
    FORBID_TAGS: ['style', 'script', 'iframe', 'object', 'embed', 'form', 'svg', 'math'],
    FORBID_ATTR: ['style'],
    RETURN_TRUSTED_TYPE: false,
  })
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** Markdown to sanitised HTML, safe for `v-html`. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true })
  return sanitizeHtml(html)
}
