import { showNotify } from 'vant'
import { i18n } from '../i18n.js'

/**
 * The text a user should read for an error, always from the locales: the box sends a code
 * for every refusal (its sentence is for logs and curl, not for the PAD).
 */
export function errorMessage(e) {
  const t = i18n.global.t
  const te = i18n.global.te
  if (!e) return t('errors.unknown')
  if (e.code === 'network') return t('errors.network')
  if (e.code === 'timeout') return t('errors.timeout')
  if (e.code && te(`errorCodes.${e.code}`)) return t(`errorCodes.${e.code}`)
  if (e.status === 403) return t('errors.forbidden')
  return e.code ? t('errors.withCode', { code: e.code }) : t('errors.unknown')
}

/** Shows an error to the user and records it; nothing is swallowed. */
export function reportError(e, context) {
  if (e && e.status === 401) return // the app is already on its way to login
  console.warn(context ? `${context}:` : 'error:', e && e.message ? e.message : e)
  showNotify({ type: 'danger', message: (context ? context + ': ' : '') + errorMessage(e), duration: 5000 })
}

export function notifyOk(message) {
  showNotify({ type: 'success', message, duration: 2500 })
}
