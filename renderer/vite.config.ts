import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// base './': the same build is served by web mode and loaded from disk by Electron.
export default defineConfig({
  base: './',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
});
