"""Reconstruction engine: datasets, meshes, the neural shader, methods, export, evaluation and the CLI."""
