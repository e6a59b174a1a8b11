import { Locale } from 'vant'
import enUS from 'vant/es/locale/lang/en-US'
import zhCN from 'vant/es/locale/lang/zh-CN'
import { i18n, saveLocale } from './i18n.js'

/** Vant's own texts (dialog buttons, ...) follow the app's language. */
export function applyVantLocale(locale) {
  if (locale === 'en') Locale.use('en-US', enUS)
  else Locale.use('zh-CN', zhCN)
  document.documentElement.lang = locale
}

/** Switches the whole app's language and remembers it on this tablet. */
export function switchLocale(locale) {
  saveLocale(locale)
  i18n.global.locale.value = locale
  applyVantLocale(locale)
}
