"""Hardware access: one sub-package per kind, each with real and simulated backends."""
