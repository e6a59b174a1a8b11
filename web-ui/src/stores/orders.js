import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf, normalizeOrder } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const useOrdersStore = defineStore('orders', {
  state: () => ({ ...resourceState([]), current: null, currentError: null, currentLoading: false }),
  actions: {
    load() {
      return loadInto(this, () => api.orders(), (b) => listOf(b, 'orders').map(normalizeOrder))
    },
    async open(id) {
      this.currentLoading = true
      try {
        this.current = normalizeOrder(await api.order(id))
        this.currentError = null
      } catch (e) {
        this.currentError = e
      } finally {
        this.currentLoading = false
      }
    },
    close() {
      this.current = null
      this.currentError = null
    },
  },
})
