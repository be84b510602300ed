"""The Qt desktop application (reconstruct-gui)."""
