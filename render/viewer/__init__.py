"""Real-time viewer pipeline: G-buffer pass, shading paths (CUDA–GL interop, GLSL compute, CPU read-back)."""
