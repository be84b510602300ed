"""A small demo dataset (12 views at 64 px), built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.demo import demo_dataset, load_recipe


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    try:
        return demo_dataset(tmp_path_factory.mktemp("demo"), recipe=load_recipe(views=12, size=64))
    except RuntimeError as exc:  # no EGL context: the demo is rendered with our GL rasterizer
        pytest.skip(f"cannot render the demo without OpenGL: {exc}")


# ---- material editing: a run folder whose shader was fitted on the demo's ground-truth mesh -------


@pytest.fixture(scope="session")
def gt_material_run(tmp_path_factory):
    """A run folder (mesh.ply, shader.*) of the demo object with its true per-face materials.

    The shader is fitted with the ground-truth mesh held fixed, to the demo's own Blinn-Phong
    appearance seen from the demo's camera ring (no rasterization: every sample facing a camera
    counts, the demo's lights cast no shadows). It is small (a few thousand weights) so the fit
    takes seconds; what the clustering tests check, that h groups by material, does not depend
    on the shader's size. Returns a namespace: folder, mesh (trimesh, world), shader,
    normalization, materials (F,) true material per face, recipe.
    """
    from types import SimpleNamespace

    import numpy as np
    import torch

    from recon.demo import Shading, bounding_box, build_mesh, face_materials, ring_cameras, shade
    from recon.export import export_mesh
    from recon.materials import sample_surface
    from recon.shader import NeuralShader, ShaderConfig, save_shader

    recipe = load_recipe(views=24)
    recipe["mesh"]["grid_resolution"] = 48
    mesh = build_mesh(recipe)
    truth = face_materials(recipe, mesh)
    bbox = bounding_box(mesh, float(recipe["mesh"]["bbox_padding"]))
    centre, scale = bbox.mean(axis=0), 2.0 / float(np.max(bbox[1] - bbox[0]))
    vertices = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32)
    samples = sample_surface(vertices, torch.tensor(np.asarray(mesh.faces)), 3000, seed=7)
    material = torch.from_numpy(truth)[samples.faces]
    shading = Shading.from_recipe(recipe)
    x, n, omega, rgb = [], [], [], []
    for camera in ring_cameras(recipe):
        eye = torch.tensor(camera.center, dtype=torch.float32)
        towards = torch.nn.functional.normalize(eye - samples.points, dim=1)
        seen = (towards * samples.normals).sum(1) > 0.05
        x.append(samples.points[seen])
        n.append(samples.normals[seen])
        omega.append(towards[seen])
        rgb.append(shade(shading, samples.points[seen], samples.normals[seen], eye, material[seen]))
    x, n, omega, rgb = (torch.cat(t) for t in (x, n, omega, rgb))
    x = (x - torch.tensor(centre, dtype=torch.float32)) * scale

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        shader = NeuralShader(ShaderConfig(hidden_h=32, layers_h=2, features=16, hidden_c=32, layers_c=1))
    optimizer = torch.optim.Adam(shader.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        batch = torch.randint(len(x), (1024,), generator=generator)
        loss = (shader(x[batch], n[batch], omega[batch]) - rgb[batch]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    shader.eval()

    folder = tmp_path_factory.mktemp("gt-material-run")
    export_mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), folder / "mesh.ply")
    save_shader(shader, (centre, scale), folder / "shader")
    return SimpleNamespace(
        folder=folder, mesh=mesh, shader=shader, normalization=(centre, scale), materials=truth, recipe=recipe,
        loss=float(loss.detach()),
    )
