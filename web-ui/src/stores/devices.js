import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf, normalizeDevice } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const useDevicesStore = defineStore('devices', {
  state: () => ({ ...resourceState([]), exceptions: {}, screenshots: {} }),
  getters: {
    byId: (s) => (id) => s.data.find((d) => d.id === id) || null,
  },
  actions: {
    load() {
      return loadInto(this, () => api.devices(), (b) => listOf(b, 'devices').map(normalizeDevice))
    },
    async loadExceptions(id) {
      const body = await api.deviceExceptions(id)
      this.exceptions[id] = listOf(body, 'exceptions').filter((e) => e.open !== false && !e.resolved_at)
      return this.exceptions[id]
    },
    async signIn(id) {
      const r = await api.signIn(id)
      await this.load()
      return r
    },
    /** Throws the ApiError; a 409 carries the exceptions to resolve. */
    async signOut(id) {
      const r = await api.signOut(id)
      await this.load()
      return r
    },
    async resolve(id, excId, note) {
      const r = await api.resolveException(id, excId, note)
      if (this.exceptions[id]) this.exceptions[id] = this.exceptions[id].filter((e) => String(e.id) !== String(excId))
      await this.load()
      return r
    },
    async command(id, op, args) {
      const r = await api.command(id, op, args)
      if (op === 'screenshot' && r && r.data && r.data.png_base64) this.screenshots[id] = { png: r.data.png_base64, at: Date.now() }
      if (r && r.ok === false) {
        const e = new Error(r.error || 'command failed')
        e.result = r
        throw e
      }
      return r
    },
  },
})
