import { defineConfig } from "vite";

// Served by the gateway at /console (services/gateway/console); everything bundled, no
// asset from elsewhere.
export default defineConfig({
  base: "/console/",
  build: { outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0, chunkSizeWarningLimit: 1500 },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
