import { defineStore } from 'pinia'
import { markRaw } from 'vue'
import { createDispatcher, createEventStream } from '../sse/dispatcher.js'

/**
 * The one live connection. Screens and stores subscribe by kind pattern with `on()`;
 * a synthetic `resync` event is dispatched after a reconnect or a gap in `seq`, so
 * subscribers refetch what they show.
 */
export const useLiveStore = defineStore('live', {
  state: () => ({
    status: 'idle', // idle | connecting | open | reconnecting | closed | stopped
    lastSeq: null,
    lastEventAt: null,
    everOpened: false,
    dispatcher: markRaw(createDispatcher()),
    stream: null,
  }),
  actions: {
    on(pattern, handler) {
      return this.dispatcher.on(pattern, handler)
    },
    receive(env) {
      if (typeof env.seq === 'number') this.lastSeq = env.seq
      this.lastEventAt = Date.now()
      this.dispatcher.dispatch(env)
    },
    resync(reason) {
      this.dispatcher.dispatch({ kind: 'resync', data: { reason }, ts: new Date().toISOString() })
    },
    setStatus(s) {
      const wasDown = this.status === 'reconnecting' || this.status === 'closed'
      this.status = s
      if (s === 'open') {
        if (this.everOpened && wasDown) this.resync('reconnected')
        this.everOpened = true
      }
    },
    /** `checkSession` returns false when the session is gone (then the stream stays shut). */
    start({ checkSession = async () => true, EventSourceImpl } = {}) {
      if (this.stream) return
      if (!EventSourceImpl && typeof EventSource === 'undefined') {
        this.status = 'closed'
        return
      }
      this.stream = markRaw(
        createEventStream({
          EventSourceImpl,
          onEvent: (env) => this.receive(env),
          onStatus: (s) => this.setStatus(s),
          onGap: () => this.resync('gap'),
          onClosed: checkSession,
        }),
      )
      this.stream.start()
    },
    stop() {
      if (this.stream) this.stream.stop()
      this.stream = null
      this.everOpened = false
      this.status = 'stopped'
    },
  },
})
