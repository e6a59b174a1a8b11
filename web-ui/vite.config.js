import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

/**
 * Vant's icon font is inlined as a base64 woff2, with a woff fallback on a public
 * CDN. The PAD runs on a branch Wi-Fi without internet: drop the CDN fallback so
 * nothing in the bundle points outside the box.
 */
export function localVantIcons() {
  const cdnFallback = /,\s*url\((["']?)\/\/at\.alicdn\.com[^)]*\)\s*format\((["'])woff\2\)/g
  return {
    name: 'branchd-local-vant-icons',
    enforce: 'pre',
    transform(code, id) {
      if (!id.endsWith('.css') || !code.includes('at.alicdn.com')) return null
      return { code: code.replace(cdnFallback, ''), map: null }
    },
  }
}

const apiTarget = process.env.BRANCHD_URL || 'http://127.0.0.1:8080'

export default defineConfig({
  base: '/',
  plugins: [vue(), localVantIcons()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 4096,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: {
      '/api': { target: apiTarget, changeOrigin: false },
      '/healthz': { target: apiTarget },
    },
  },
  preview: {
    proxy: {
      '/api': { target: apiTarget, changeOrigin: false },
    },
  },
  test: {
    environment: 'node',
    include: ['tests/**/*.test.js'],
    env: { TZ: 'Asia/Shanghai' },
  },
})
