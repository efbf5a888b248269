"""The model zoo: manifest, zoo:NAME resolution, downloads and reference-weight import."""
