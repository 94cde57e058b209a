"""TinyLlama desktop app."""
