"""GLSL 3.30 sources of the viewer's raster passes (the MLP compute shader is generated in glsl_mlp.py).

All passes but the final display one render in *image* orientation: `Camera.clip_matrix` puts image
row 0 at framebuffer row 0 (GL's bottom row), so G-buffer and colour textures read back top row
first, like numpy images. The display pass is the one place that flips, onto a window framebuffer
whose row 0 is the bottom of the widget.

These passes need only OpenGL 3.3, so the viewer draws meshes (and shades them on the CPU) even
where compute shaders are missing; the GLSL shading path needs 4.3.
"""

from __future__ import annotations

# Display modes drawn by the G-buffer pass itself (code in u_mode); neural modes leave the colour
# attachment for a shading path.
RASTER_MODES = {"normals": 0, "smooth": 1, "flat": 2}
NEURAL_MODE_CODE = 3

GBUFFER_VERTEX = """
#version 330
uniform mat4 u_clip;
in vec3 in_position;
in vec3 in_normal;
out vec3 v_position;
out vec3 v_normal;
void main() {
    v_position = in_position;
    v_normal = in_normal;
    gl_Position = u_clip * vec4(in_position, 1.0);
}
"""

# Position (xyz, coverage 1 in w), unit normal, and for the raster modes the final colour, with
# premultiplied alpha = coverage (the clear leaves 0 everywhere else). Flat normals come from the
# screen-space derivatives of the position (exact for a planar triangle), turned towards the eye.
GBUFFER_FRAGMENT = """
#version 330
uniform int u_mode;  // 0 normals, 1 smooth, 2 flat, 3 neural (colour written later)
uniform vec3 u_eye;
in vec3 v_position;
in vec3 v_normal;
layout(location = 0) out vec4 o_position;
layout(location = 1) out vec4 o_normal;
layout(location = 2) out vec4 o_color;
void main() {
    vec3 to_eye = normalize(u_eye - v_position);
    float len = length(v_normal);
    vec3 n = len > 1e-20 ? v_normal / len : to_eye;
    if (u_mode == 2) {
        vec3 f = cross(dFdx(v_position), dFdy(v_position));
        float flen = length(f);
        n = flen > 1e-30 ? f / flen : n;
        n = dot(n, to_eye) < 0.0 ? -n : n;
    }
    o_position = vec4(v_position, 1.0);
    o_normal = vec4(n, 0.0);
    if (u_mode == 0) {
        o_color = vec4(n * 0.5 + 0.5, 1.0);
    } else {
        float light = 0.15 + 0.75 * max(dot(n, to_eye), 0.0);
        o_color = vec4(vec3(0.85 * light), 1.0);
    }
}
"""

# Wireframe edges and camera frusta, depth-tested against the G-buffer's depth and pulled towards
# the eye by u_bias (in NDC depth) so edges on the surface win the depth test.
LINES_VERTEX = """
#version 330
uniform mat4 u_clip;
uniform float u_bias;
in vec3 in_position;
void main() {
    gl_Position = u_clip * vec4(in_position, 1.0);
    gl_Position.z -= u_bias * gl_Position.w;
}
"""

LINES_FRAGMENT = """
#version 330
uniform vec4 u_color;
layout(location = 0) out vec4 o_color;
void main() {
    o_color = u_color;
}
"""

# Full-screen triangle (no vertex buffer). Texture row 0 is image row 0 = the widget's top row,
# while gl_FragCoord.y = 0.5 is the bottom row, hence 1 - y. The colour is premultiplied by
# coverage, so an upscaled (linearly filtered) silhouette blends into the background correctly.
DISPLAY_VERTEX = """
#version 330
void main() {
    vec2 corner = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
    gl_Position = vec4(corner, 0.0, 1.0);
}
"""

DISPLAY_FRAGMENT = """
#version 330
uniform sampler2D u_color;
uniform sampler2D u_overlay;
uniform float u_overlay_opacity;
uniform vec2 u_size;
uniform vec3 u_background;
layout(location = 0) out vec4 o_color;
void main() {
    vec2 uv = vec2(gl_FragCoord.x / u_size.x, 1.0 - gl_FragCoord.y / u_size.y);
    vec4 c = texture(u_color, uv);
    vec3 rgb = c.rgb + (1.0 - c.a) * u_background;
    if (u_overlay_opacity > 0.0) {
        rgb = mix(rgb, texture(u_overlay, uv).rgb, u_overlay_opacity);
    }
    o_color = vec4(rgb, 1.0);
}
"""
