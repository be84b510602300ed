"""The neural shader: architecture of the paper's Fig. 3, separable h and c, pickle-free save/load."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from recon.errors import ReconstructError
from recon.shader import (
    FORMAT_VERSION,
    NeuralShader,
    PositionalEncoding,
    ShaderConfig,
    ShaderFileError,
    load_shader,
    save_shader,
)

NORMALIZATION = (np.array([0.25, -1.5, 3.0]), 0.125)


def _inputs(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g) * 2 - 1
    nrm = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    omega = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    return x, nrm, omega


def _linears(seq: torch.nn.Sequential) -> list[torch.nn.Linear]:
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def test_default_config_is_the_papers() -> None:
    cfg = ShaderConfig()
    assert cfg.to_dict() == dict(pe_octaves=4, hidden_h=256, layers_h=3, features=256, hidden_c=128, layers_c=2)


def test_default_architecture_matches_figure_3() -> None:
    shader = NeuralShader()
    h, c = _linears(shader.h), _linears(shader.c)
    # h: PE(27) → 3 hidden ReLU layers of 256 → linear 256 features.
    assert [(m.in_features, m.out_features) for m in h] == [(27, 256), (256, 256), (256, 256), (256, 256)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in shader.h) == 3
    assert isinstance(shader.h[-1], torch.nn.Linear)  # no ReLU on the features
    # c: [h, n, ω] (262) → 2 hidden ReLU layers of 128 → 3 (sigmoid applied in color()).
    assert [(m.in_features, m.out_features) for m in c] == [(262, 128), (128, 128), (128, 3)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in shader.c) == 2


@pytest.mark.parametrize(
    "cfg",
    [
        ShaderConfig(pe_octaves=0, hidden_h=16, layers_h=1, features=8, hidden_c=4, layers_c=1),
        ShaderConfig(pe_octaves=6, hidden_h=32, layers_h=5, features=12, hidden_c=8, layers_c=0),
        ShaderConfig(pe_octaves=2, hidden_h=8, layers_h=0, features=5, hidden_c=8, layers_c=3),
    ],
)
def test_widths_and_depths_follow_the_config(cfg: ShaderConfig) -> None:
    shader = NeuralShader(cfg)
    h, c = _linears(shader.h), _linears(shader.c)
    assert len(h) == cfg.layers_h + 1 and len(c) == cfg.layers_c + 1
    assert h[0].in_features == 3 * (1 + 2 * cfg.pe_octaves)
    assert all(m.out_features == cfg.hidden_h for m in h[:-1]) and h[-1].out_features == cfg.features
    assert c[0].in_features == cfg.features + 6
    assert all(m.out_features == cfg.hidden_c for m in c[:-1]) and c[-1].out_features == 3
    x, n, w = _inputs(10)
    assert shader.features(x).shape == (10, cfg.features)
    assert shader(x, n, w).shape == (10, 3)


def test_positional_encoding_layout_and_frequencies() -> None:
    pe = PositionalEncoding(4)
    x = torch.tensor([[0.1, -0.2, 0.3]])
    out = pe(x)[0]
    assert out.shape == (27,)
    torch.testing.assert_close(out[:3], x[0])
    for k in range(4):
        f = (2.0**k) * math.pi
        base = 3 + 6 * k
        torch.testing.assert_close(out[base : base + 3], torch.sin(f * x[0]))
        torch.testing.assert_close(out[base + 3 : base + 6], torch.cos(f * x[0]))
    assert "freqs" not in pe.state_dict()  # derived from the config, not a weight


def test_shapes_broadcast_and_range() -> None:
    shader = NeuralShader()
    x = torch.rand(2, 5, 3) * 2 - 1
    n = torch.nn.functional.normalize(torch.randn(2, 5, 3), dim=-1)
    omega = torch.tensor([0.0, 0.0, 1.0])  # one direction for every point
    rgb = shader(x, n, omega)
    assert rgb.shape == (2, 5, 3)
    assert torch.all((rgb >= 0) & (rgb <= 1))
    # Extreme features still give colours in [0, 1].
    rgb = shader.color(torch.full((4, 256), 1e4), n[0, :4], n[0, :4])
    assert torch.all((rgb >= 0) & (rgb <= 1))


def test_features_and_color_compose_to_forward() -> None:
    shader = NeuralShader()
    x, n, w = _inputs()
    h = shader.features(x)
    assert torch.equal(shader.color(h, n, w), shader(x, n, w))
    # Material editing: every point given the features of point 0 keeps its own normal shading.
    swapped = shader.color(h[:1].expand_as(h), n, w)
    assert swapped.shape == (len(x), 3)
    assert torch.equal(swapped[0], shader(x, n, w)[0])


def test_bad_input_shapes_are_refused() -> None:
    shader = NeuralShader()
    x, n, w = _inputs(4)
    with pytest.raises(ValueError, match="x must have shape"):
        shader.features(x[:, :2])
    with pytest.raises(ValueError, match="h must have shape"):
        shader.color(torch.zeros(4, 7), n, w)


def test_gradients_reach_positions_normals_and_weights() -> None:
    shader = NeuralShader()
    x, n, w = _inputs(8)
    x.requires_grad_(True)
    n.requires_grad_(True)
    shader(x, n, w).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert n.grad is not None and n.grad.abs().sum() > 0
    assert all(p.grad is not None for p in shader.parameters())


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="hidden_h"):
        ShaderConfig(hidden_h=0)
    with pytest.raises(ValueError, match="integer"):
        ShaderConfig(features=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        ShaderConfig(layers_c=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown field"):
        ShaderConfig.from_dict({"pe_octaves": 4, "depth": 9})
    cfg = ShaderConfig(pe_octaves=2, hidden_c=64)
    assert ShaderConfig.from_dict(cfg.to_dict()) == cfg
    assert ShaderConfig.from_dict({}) == ShaderConfig()


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    cfg = ShaderConfig(pe_octaves=3, hidden_h=32, layers_h=2, features=16, hidden_c=24, layers_c=2)
    shader = NeuralShader(cfg)
    weights, config = save_shader(shader, NORMALIZATION, tmp_path / "out" / "shader")
    assert weights == tmp_path / "out" / "shader.safetensors" and config == tmp_path / "out" / "shader.json"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shader.json", "shader.safetensors"]

    for path in (tmp_path / "out" / "shader", config, weights):  # stem or either file
        loaded, (centre, scale) = load_shader(path)
        assert loaded.config == cfg
        np.testing.assert_array_equal(centre, NORMALIZATION[0])
        assert scale == NORMALIZATION[1]
        x, n, w = _inputs()
        with torch.no_grad():
            assert torch.equal(loaded(x, n, w), shader(x, n, w))


def test_files_are_plain_safetensors_and_json(tmp_path: Path) -> None:
    shader = NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8))
    weights, config = save_shader(shader, NORMALIZATION, tmp_path / "shader")

    with safe_open(weights, framework="pt") as f:
        keys = set(f.keys())
        assert keys == set(shader.state_dict())
        for k in keys:
            assert torch.equal(f.get_tensor(k), shader.state_dict()[k])
        own = json.loads(f.metadata()["record"])  # the weights' own copy of the record, for a save cut in two

    record = json.loads(config.read_text())
    assert own == {k: v for k, v in record.items() if k != "weights"}
    assert record["format"] == "reconstruct.neural_shader" and record["version"] == FORMAT_VERSION
    assert record["config"] == shader.config.to_dict()
    assert record["normalization"]["centre"] == NORMALIZATION[0].tolist()
    assert record["normalization"]["scale"] == NORMALIZATION[1]
    assert record["weights"]["file"] == "shader.safetensors"
    assert not weights.read_bytes().startswith(b"PK") and not weights.read_bytes().startswith(b"\x80")  # no zip/pickle


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path]:
    return save_shader(NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8)), NORMALIZATION, tmp_path / "s")


def test_corrupt_weights_name_the_file(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ShaderFileError, match="s.safetensors") as err:
        load_shader(config)
    assert isinstance(err.value, ReconstructError) and err.value.path == weights


def test_weights_not_safetensors_even_with_matching_checksum(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    weights.write_bytes(b"not a safetensors file")
    record = json.loads(config.read_text())
    record["weights"]["sha256"] = hashlib.sha256(b"not a safetensors file").hexdigest()
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match="not a valid safetensors file") as err:
        load_shader(config)
    assert err.value.path == weights


def test_corrupt_json_names_the_file(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    config.write_text('{"format": "reconstruct.neural_shader", "vers')
    with pytest.raises(ShaderFileError, match="not valid JSON") as err:
        load_shader(weights)
    assert err.value.path == config


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda r: r.update(format="something else"), "not a shader config"),
        (lambda r: r.update(version=FORMAT_VERSION + 1), "unsupported shader format version"),
        (lambda r: r["config"].update(hidden_h=-3), "bad shader config"),
        (lambda r: r["normalization"].update(scale=0), "bad normalisation"),
        (lambda r: r["normalization"].update(centre=[1, 2]), "bad normalisation"),
    ],
)
def test_bad_json_content(saved: tuple[Path, Path], edit, match: str) -> None:
    _, config = saved
    record = json.loads(config.read_text())
    edit(record)
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match=match):
        load_shader(config)


def test_weights_that_do_not_fit_the_config(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    record = json.loads(config.read_text())
    record["config"]["hidden_c"] = 16
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match="do not fit the config") as err:
        load_shader(config)
    assert err.value.path == weights


def test_weights_from_another_run_are_detected(tmp_path: Path) -> None:
    a = save_shader(NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8)), NORMALIZATION, tmp_path / "a")
    other = (NORMALIZATION[0] + 1, NORMALIZATION[1])
    b = save_shader(NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8)), other, tmp_path / "b")
    b[0].replace(a[0])
    with pytest.raises(ShaderFileError, match="checksum") as err:
        load_shader(a[1])
    assert err.value.path == a[0]


def _one_run_saved_twice(tmp_path: Path) -> tuple[tuple[Path, Path], NeuralShader]:
    """Two saves of one run to one stem whose second was killed between its renames: new weights, old .json."""
    cfg = ShaderConfig(hidden_h=8, features=8, hidden_c=8)
    first = save_shader(NeuralShader(cfg), NORMALIZATION, tmp_path / "run" / "shader")
    old_json = first[1].read_bytes()
    second = NeuralShader(cfg)
    save_shader(second, NORMALIZATION, tmp_path / "run" / "shader")
    first[1].write_bytes(old_json)
    return first, second


def test_a_save_killed_between_its_two_files_leaves_the_newer_weights_readable(tmp_path: Path, caplog) -> None:
    (weights, config), second = _one_run_saved_twice(tmp_path)
    with caplog.at_level("WARNING", logger="recon.shader"):
        loaded, (centre, scale) = load_shader(config)
    assert "from the save before" in caplog.text
    np.testing.assert_array_equal(centre, NORMALIZATION[0])
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, second.state_dict()[k]), k
    config.unlink()  # a first save killed the same way: no .json yet
    loaded, _ = load_shader(weights)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, second.state_dict()[k]), k


def test_a_stale_json_that_was_edited_is_not_passed_over(tmp_path: Path) -> None:
    (weights, config), _ = _one_run_saved_twice(tmp_path)
    record = json.loads(config.read_text())
    record["normalization"]["scale"] = 2.0
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match="checksum"):
        load_shader(config)


def test_older_weights_without_their_own_record_still_need_the_checksum(tmp_path: Path) -> None:
    shader = NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8))
    weights, config = save_shader(shader, NORMALIZATION, tmp_path / "s")
    tensors = {k: v.detach().clone().contiguous() + 1 for k, v in shader.state_dict().items()}
    weights.write_bytes(safetensors.torch.save(tensors, metadata={"format": "reconstruct.neural_shader"}))
    with pytest.raises(ShaderFileError, match="checksum"):
        load_shader(config)
    config.unlink()
    with pytest.raises(ShaderFileError, match="config file not found") as err:
        load_shader(weights)
    assert err.value.path == config


def test_missing_files(tmp_path: Path, saved: tuple[Path, Path]) -> None:
    with pytest.raises(ShaderFileError, match="not found"):
        load_shader(tmp_path / "nothing")
    saved[0].unlink()
    with pytest.raises(ShaderFileError, match="weights file not found"):
        load_shader(saved[1])


def test_save_refuses_a_bad_normalisation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        save_shader(NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8)), (np.zeros(3), -1.0), tmp_path / "s")
    assert not any(tmp_path.iterdir())


def test_checksum_is_required(saved: tuple[Path, Path]) -> None:
    _, config = saved
    record = json.loads(config.read_text())
    del record["weights"]["sha256"]
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match="SHA-256") as err:
        load_shader(config)
    assert err.value.path == config


def test_sizes_are_bounded(saved: tuple[Path, Path]) -> None:
    _, config = saved
    record = json.loads(config.read_text())
    record["config"].update(hidden_h=10**9)
    config.write_text(json.dumps(record))
    with pytest.raises(ShaderFileError, match="maximum"):
        load_shader(config)


def test_weights_file_larger_than_the_config_allows_is_not_read(saved: tuple[Path, Path]) -> None:
    weights, config = saved
    with weights.open("ab") as f:
        f.truncate(8 << 20)
    with pytest.raises(ShaderFileError, match="more than") as err:
        load_shader(config)
    assert err.value.path == weights


def test_the_same_weights_give_the_same_bytes_in_every_process(tmp_path: Path) -> None:
    """A resumed run's shader file must equal an uninterrupted run's byte for byte (the kill test)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from recon.shader import NeuralShader, ShaderConfig, save_shader; torch.manual_seed(0); "
        "save_shader(NeuralShader(ShaderConfig(hidden_h=8, features=8, hidden_c=8)), ([0.0, 0.0, 0.0], 1.0), sys.argv[1])"
    )
    blobs = set()
    for i in range(3):  # metadata written in a per-process order would differ in most of three processes
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"s{i}")], check=True, cwd=Path(__file__).resolve().parents[2])
        blobs.add((tmp_path / f"s{i}.safetensors").read_bytes())
    assert len(blobs) == 1
