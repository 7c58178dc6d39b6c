/**
 * Notes are Markdown written by users. They are rendered with marked, then sanitised
 * with DOMPurify under a strict allow-list: the only HTML the dashboard ever inserts
 * with `v-html` is what `renderMarkdown` returns.
 */
import DOMPurify from 'dompurify'
import { Marked, type Tokens } from 'marked'

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

const ALLOWED_ATTR = ['href', 'title', 'alt', 'src', 'start', 'align', 'data-sha256']

/**
 * A picture stored with the run, referenced in a note as `![caption](sha256:<64 hex>)`.
 * It renders as `<img data-sha256="…">` without a `src`: the note's component fetches
 * the bytes with the API token and shows them through an object URL.
 */
const BLOB_REF = /^sha256:([0-9a-f]{64})$/
const SHA256 = /^[0-9a-f]{64}$/
/** An absolute address on any site, this one included (`https://…`, `//host/…`). */
const OTHER_SITE = /^(?:https?:)?\/\//i

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
      const sha = node.getAttribute('data-sha256')
      if (sha !== null && (node.tagName !== 'IMG' || !SHA256.test(sha))) {
        node.removeAttribute('data-sha256')
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

const notes = new Marked({
  async: false,
  gfm: true,
  breaks: true,
  renderer: {
    image({ href, text }: Tokens.Image): string | false {
      const match = BLOB_REF.exec(href)
      if (match) return `<img data-sha256="${match[1]}" alt="${escapeHtml(text)}">`
      // The page's Content-Security-Policy loads pictures from this server only, so
      // that a note cannot make its readers' browsers call another site: a picture
      // elsewhere becomes a link to it rather than a broken image.
      if (OTHER_SITE.test(href)) {
        return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`
      }
      return false
    },
  },
})

/** Markdown to sanitised HTML, safe for `v-html`. */
export function renderMarkdown(text: string): string {
  const html = notes.parse(text, { async: false })
  return sanitizeHtml(html)
}
