import { createI18n } from 'vue-i18n'
import zh from './locales/zh-CN.json'
import en from './locales/en.json'

export const LOCALE_KEY = 'branchd.locale'
export const LOCALES = ['zh-CN', 'en']
export const DEFAULT_LOCALE = 'zh-CN'

/** The saved language, or Chinese: staff read Chinese first, whatever the tablet says. */
export function initialLocale(storage = globalThis.localStorage) {
  try {
    const saved = storage && storage.getItem(LOCALE_KEY)
    return LOCALES.includes(saved) ? saved : DEFAULT_LOCALE
  } catch {
    return DEFAULT_LOCALE
  }
}

export function saveLocale(locale, storage = globalThis.localStorage) {
  if (!LOCALES.includes(locale)) throw new Error(`unknown locale ${locale}`)
  try {
    if (storage) storage.setItem(LOCALE_KEY, locale)
  } catch (e) {
    console.warn('language not saved:', e.message)
  }
}

export const messages = { 'zh-CN': zh, en }

export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: DEFAULT_LOCALE,
  messages,
  missingWarn: false,
  fallbackWarn: false,
})

/** A translated label when the key exists, `fallback` otherwise (for codes from the box). */
export function labelOr(t, te, key, fallback) {
  return te(key) ? t(key) : fallback
}
