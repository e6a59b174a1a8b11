import { useI18n } from 'vue-i18n'
import { useProductsStore } from '../stores/products.js'

/** A product's name in the current language, from the shelf the box sent. */
export function useProductName() {
  const { t, locale } = useI18n()
  const products = useProductsStore()
  return (code) => {
    const p = products.byCode(code)
    if (!p) return t('shelf.unknownProduct')
    return locale.value === 'en' ? p.name_en : p.name_zh
  }
}
