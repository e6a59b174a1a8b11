// Post-build check: the PAD app must work with only the box reachable, so nothing
// in dist/ may reference a host outside it. Prints the size of dist/.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, extname } from 'node:path'

const root = new URL('../dist/', import.meta.url).pathname
const external = /(?:https?:)?\/\/(?!www\.w3\.org\/)(?:[a-z0-9-]+\.)+(?:com|cn|net|org|io|dev)\b/gi
const checked = new Set(['.html', '.css', '.js'])
let total = 0
const problems = []

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const st = statSync(path)
    if (st.isDirectory()) { walk(path); continue }
    total += st.size
    const ext = extname(name)
    if (!checked.has(ext)) continue
    const text = readFileSync(path, 'utf8')
    for (const m of text.matchAll(external)) {
      // Code comments and licence banners are not fetched; only url(...), src= and
      // href= uses and plain string literals in CSS/HTML matter.
      const around = text.slice(Math.max(0, m.index - 12), m.index)
      const fetched = ext !== '.js' || /url\(\s*["']?$|src=["']?$|href=["']?$|import\(["']$|from\s*["']$/.test(around)
      if (fetched) problems.push(`${path.slice(root.length)}: ${m[0]}`)
    }
  }
}

walk(root)
if (problems.length) {
  console.error('dist/ references external hosts:\n  ' + problems.join('\n  '))
  process.exit(1)
}
console.log(`dist/ ok: no external references, ${(total / 1024).toFixed(0)} KiB in total`)
