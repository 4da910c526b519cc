"""orderfast: a fast, production-grade HTTP order service with a compiled Rust core."""

__version__ = "0.1.0"
