"""The bottom layer: files, atomic writes, downloads, archives, locks, paths, terminal output, errors and the version; it knows nothing of models (see docs/architecture.md)."""
