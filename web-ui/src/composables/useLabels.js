import { useI18n } from 'vue-i18n'
import { useQueueStore } from '../stores/queue.js'

/** Display names for codes the box sends (services, levels, transaction types, ...). */
export function useLabels() {
  const { t, te, locale } = useI18n()
  const queue = useQueueStore()
  // Message keys never contain dots, so a code like "queue.alert" is looked up as "queue_alert".
  const known = (prefix, code, params) => {
    if (code === null || code === undefined || code === '') return null
    const key = `${prefix}.${String(code).replace(/\./g, '_')}`
    return te(key) ? t(key, params || {}) : null
  }
  const service = (code) => {
    const f = queue.figures.find((x) => x.code === code)
    const name = f && f.name
    // The box's configured name is Chinese: prefer it in Chinese, the translation in English.
    return (locale.value === 'en' ? known('services', code) || name : name || known('services', code)) || code || '—'
  }
  return {
    service,
    level: (code) => known('levels', code) || code || '',
    txn: (code) => known('txnTypes', code) || code || '—',
    module: (code) => known('modules', code) || code,
    consumable: (code) => known('consumables', code) || code,
    deviceState: (code) => known('deviceStates', code) || code || '—',
    // A ticket's place in the call order, from the code and its params (`whyList`).
    why(w) {
      const p = w.params || {}
      let code = w.code
      if (code === 'fifo' && p.weight !== undefined && Number(p.weight) !== 1) code = 'fifoWeighted'
      if (code === 'moved' && p.reason) code = 'movedWithReason'
      return known('why', code, { ...p, from: p.from === undefined ? undefined : service(p.from) }) || w.code
    },
    field: (code) => known('ocr.fields', code) || code,
    step: (code) => known('orders.stepNames', code) || code,
    orderStatus: (code) => known('orders.status', code) || code,
    priority: (code) => known('orders.priorities', code) || code || '—',
    businessType: (code) => known('orders.businessTypes', code) || code || '—',
    reason: (code) => known('tasks.reasons', code) || code || '—',
    element: (code) => known('tasks.elementKeys', code) || code,
  }
}
