"""Rasterizer backends with the same method names (gl: moderngl/EGL; nvdiffrast: CUDA)."""
