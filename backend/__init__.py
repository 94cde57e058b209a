"""TinyLlama backend: router, queue, worker and the local profile."""
