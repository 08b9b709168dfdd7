"""Dev-only code (local mode, the demo): never in the production image."""
