"""Reconstruction methods as steppable sessions (NDS now; the CLI and GUI drive the same objects)."""
