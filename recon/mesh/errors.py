"""Mesh errors the CLI and GUI report as one line (subclasses of recon.errors.ReconstructError)."""

from __future__ import annotations

from recon.errors import ReconstructError


class MeshError(ReconstructError):
    """A mesh cannot be built, read, remeshed or repaired; the message says which and why."""


class EmptyHullError(MeshError):
    """The visual hull has no inside: the masks and cameras carve away the whole bounding box."""
