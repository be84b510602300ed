"""The render benchmark runs and reports every stage (numbers are printed by the CLI, never asserted)."""

import pytest
import torch

from recon.bench import bench_mesh, bench_render, format_render_table
from recon.bench_mitsuba import unavailable_reason
from recon.precision import resolve_precision

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
    assert result["load_average_1min"]["cpus"] >= 1
    # The shaded task's products run as a run's would: "auto" resolves as training resolves it.
    assert result["shader_precision"] == resolve_precision("auto", torch.device("cpu"))


def test_bench_render_shades_in_the_precision_asked_for() -> None:
    for precision in ("float32", "bfloat16"):
        result = bench_render("cpu", size=48, backend="gl", repeats=1, targets=(2_500,), shader_precision=precision)
        assert result["shader_precision"] == precision
        assert f"shader products in {precision}" in format_render_table(result)
        assert result["cases"][0]["shaded_step_ms"] > 0
    with pytest.raises(ValueError, match="shader precision"):
        bench_render("cpu", size=48, backend="gl", targets=(2_500,), shader_precision="float16")


def test_bench_render_times_the_peer_or_says_why_not() -> None:
    result = bench_render("cpu", size=48, backend="gl", repeats=1, targets=(2_500,), peers=("mitsuba",))
    reason = unavailable_reason()
    table = format_render_table(result)
    if reason:
        assert result["peers"]["mitsuba"] == {"skipped": reason}
        assert f"peer mitsuba skipped: {reason}" in table
        return
    for task in ("silhouette", "shaded"):
        entry = result["cases"][0]["peers"]["mitsuba"][task]
        assert entry["ours_ms"] > 0 and entry["peer_ms"] > 0
        assert entry["ratio"] == pytest.approx(entry["peer_ms"] / entry["ours_ms"])
    assert "peer mitsuba 3." in table and "shaded ratio" in table


def test_a_skipped_peer_is_one_line_of_the_table() -> None:
    result = bench_render("cpu", size=48, backend="gl", repeats=1, targets=(2_500,))
    assert result["peers"] == {}
    result["peers"] = {"mitsuba": {"skipped": unavailable_reason("no_such_renderer_module")}}
    skipped = [line for line in format_render_table(result).splitlines() if line.startswith("peer mitsuba")]
    assert skipped == ["peer mitsuba skipped: " + result["peers"]["mitsuba"]["skipped"]]


def test_bench_render_rejects_unknown_peers() -> None:
    with pytest.raises(ValueError, match="unknown peers"):
        bench_render("cpu", size=48, backend="gl", targets=(2_500,), peers=("blender",))
