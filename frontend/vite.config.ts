import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The built app goes into the Python package, which the tracking server serves at `/`.
// `npm run dev` proxies the API to a running `labnotebook serve` (LABNOTEBOOK_DEV_API).
const api = process.env.LABNOTEBOOK_DEV_API ?? 'http://127.0.0.1:8788'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: '../src/labnotebook/static',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 700,
    rolldownOptions: { checks: { pluginTimings: false } },
  },
  server: {
    proxy: { '/api': { target: api, changeOrigin: false } },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
  },
})
