import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { alertFromEvent, listOf, normalizeAlert } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

const byNewest = (a, b) => String(b.ts || '').localeCompare(String(a.ts || ''))

export const useAlertsStore = defineStore('alerts', {
  state: () => resourceState([]),
  getters: {
    sorted: (s) => [...s.data].sort((a, b) => Number(a.acked) - Number(b.acked) || byNewest(a, b)),
    unacked: (s) => s.data.filter((a) => !a.acked),
  },
  actions: {
    load() {
      return loadInto(this, () => api.alerts(), (b) => listOf(b, 'alerts').map(normalizeAlert))
    },
    /** From a live event: upsert when it carries an id, refetch otherwise. */
    fromEvent(env) {
      const a = alertFromEvent(env)
      if (!a.id) return this.load()
      const i = this.data.findIndex((x) => x.id === a.id)
      if (i >= 0) this.data.splice(i, 1, { ...this.data[i], ...a })
      else this.data.unshift(a)
      return a
    },
    markAcked(id) {
      const a = this.data.find((x) => x.id === String(id))
      if (a) a.acked = true
    },
    async ack(id) {
      await api.ackAlert(id)
      this.markAcked(id)
    },
  },
})
