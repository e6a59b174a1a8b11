/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let t = null
  const d = (...args) => {
    if (t) clearTimeout(t)
    t = setTimeout(() => {
      t = null
      fn(...args)
    }, ms)
  }
  d.cancel = () => {
    if (t) clearTimeout(t)
    t = null
  }
  return d
}
