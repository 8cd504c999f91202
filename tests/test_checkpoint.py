"""Checkpoints: tensors in safetensors and plain JSON only, atomic writes, fallback to the previous copy."""

import json

import pytest
import torch

from deeprecipes.errors import CheckpointError
from deeprecipes.training.checkpoint import decode, encode, load_checkpoint, read_index, save_checkpoint


def test_encode_decode_round_trip_keeps_types():
    opt_state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "foreach": None}],
    }
    tensors = {}
    meta = encode(opt_state, tensors, "opt")
    json.dumps(meta)  # plain JSON
    back = decode(json.loads(json.dumps(meta)), tensors)
    assert list(back["state"]) == [0]
    assert torch.equal(back["state"][0]["exp_avg"], opt_state["state"][0]["exp_avg"])
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)


def test_encode_refuses_objects_it_would_have_to_pickle():
    with pytest.raises(TypeError, match="cannot store a"):
        encode({"fn": lambda: 0}, {}, "x")


def test_checkpoint_files_are_safetensors_and_json_only(tmp_path):
    save_checkpoint(tmp_path, "a", {"w": torch.ones(2)}, {"epoch": 1, "t": torch.zeros(3)})
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["model.safetensors", "state.json", "state.safetensors"]
    for p in (tmp_path / "a").iterdir():
        assert b"\x80\x04" not in p.read_bytes()[:2]  # no pickle protocol header
    weights, state, path = load_checkpoint(tmp_path)
    assert path.name == "a" and torch.equal(weights["w"], torch.ones(2)) and state["epoch"] == 1


def test_keeps_latest_previous_and_best_only(tmp_path):
    save_checkpoint(tmp_path, "c1", {"w": torch.ones(1)}, {"e": 1}, best_value=0.5)
    for name in ("c2", "c3", "c4"):
        save_checkpoint(tmp_path, name, {"w": torch.ones(1)}, {"e": 1})
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["c1", "c3", "c4"]
    assert read_index(tmp_path) == {"latest": "c4", "previous": "c3", "best": "c1", "best_value": 0.5}
    assert load_checkpoint(tmp_path, "best")[2].name == "c1"


def test_damaged_latest_falls_back_to_previous(tmp_path):
    save_checkpoint(tmp_path, "c1", {"w": torch.zeros(1)}, {"e": 1})
    save_checkpoint(tmp_path, "c2", {"w": torch.ones(1)}, {"e": 2})
    (tmp_path / "c2" / "model.safetensors").write_bytes(b"garbage")
    weights, state, path = load_checkpoint(tmp_path)
    assert path.name == "c1" and state["e"] == 1


def test_leftover_temp_directory_is_ignored_and_replaced(tmp_path):
    save_checkpoint(tmp_path, "c1", {"w": torch.zeros(1)}, {"e": 1})
    (tmp_path / ".c2.tmp").mkdir()
    (tmp_path / ".c2.tmp" / "model.safetensors").write_bytes(b"half")
    assert load_checkpoint(tmp_path)[2].name == "c1"
    save_checkpoint(tmp_path, "c2", {"w": torch.ones(1)}, {"e": 2})
    assert load_checkpoint(tmp_path)[1]["e"] == 2 and not (tmp_path / ".c2.tmp").exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        load_checkpoint(tmp_path)


def test_atomic_writes_leave_files_with_the_umask_mode_not_private(tmp_path):
    import os
    import stat

    from deeprecipes.fileio import file_mode
    from deeprecipes.training.checkpoint import atomic_write_text
    from deeprecipes.viz import save_curves

    old = os.umask(0o022)
    try:
        import deeprecipes.fileio

        deeprecipes.fileio._FILE_MODE.clear()
        assert file_mode() == 0o644
        atomic_write_text(tmp_path / "a.json", "{}")
        save_checkpoint(tmp_path / "ckpt", "ckpt-1", {"w": torch.ones(2)}, {"epoch": 1})
        save_curves([{"epoch": 1, "step": 1, "loss": 1.0}], tmp_path / "c.png")
        files = [tmp_path / "a.json", tmp_path / "c.png", *(tmp_path / "ckpt" / "ckpt-1").iterdir()]
        assert len(files) == 5
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    finally:
        os.umask(old)
        deeprecipes.fileio._FILE_MODE.clear()
