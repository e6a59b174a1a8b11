// Which texts on a PAD screen are not in the screen's language.

// A code the box sends (`queue.wait`, `device.consumable_low`) shown as it came.
const RAW_CODE = /(?:^|[^\w./@-])([a-z]+(?:_[a-z]+)*\.[a-z]+(?:_[a-z]+)*)(?![\w./@-])/
// Three English words in a row: a sentence or phrase, not a name like "STM" or "QR".
const ENGLISH = /[A-Za-z]{2,}(?:[ ,'-]+[A-Za-z]{2,}){2,}/
const HAN = /\p{Script=Han}/u

/** What on the screen is not in the screen's language (empty when all is well). */
export function foreignText(texts, locale) {
  const bad = []
  for (const t of texts) {
    if (locale === 'en') {
      if (HAN.test(t)) bad.push(`Chinese "${t}"`)
    } else {
      const code = RAW_CODE.exec(t)
      if (code) bad.push(`raw code "${code[1]}" in "${t}"`)
      else if (ENGLISH.test(t)) bad.push(`English "${t}"`)
    }
  }
  return [...new Set(bad)]
}
