"""The render benchmark runs and reports every stage (numbers are printed by the CLI, never asserted)."""

import pytest

from recon.bench import bench_mesh, bench_render, format_render_table

pytestmark = pytest.mark.gl


def test_bench_meshes_hit_their_sizes() -> None:
    for target in (2_500, 40_000):
        vertices, faces = bench_mesh(target)
        assert 0.6 * target < len(faces) < 1.6 * target
        assert faces.max() < len(vertices)


def test_bench_render_reports_every_stage() -> None:
    result = bench_render("cpu", size=48, backend="gl", repeats=1, targets=(2_500, 10_000))
    assert [row["triangles"] for row in result["cases"]] == sorted(row["triangles"] for row in result["cases"])
    for row in result["cases"]:
        for key in ("sampling_ms", "evaluation_ms", "shading_ms", "splatting_ms", "silhouette_step_ms", "shaded_step_ms"):
            assert row[key] > 0, key
    assert "silhouette" in format_render_table(result)
