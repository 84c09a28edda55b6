"""Hardware access: one sub-package per kind, each with an interface, real and simulated backends."""
