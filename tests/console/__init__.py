"""The mesh console in a real browser (Debian chromium driven by Playwright)."""
