"""Checkpoints: round trips, clear errors for every mismatch or damage, never code execution."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import (
    PRETRAINED,
    CheckpointError,
    LSTMConfig,
    MusicTransformer,
    NoteLSTM,
    TransformerConfig,
    build_model,
    load_checkpoint,
    load_generator,
    save_checkpoint,
)
from rlmusic.models.checkpoint import generator_record
from tests.test_models import one_thread  # noqa: F401  (autouse fixture)

ENCODING = MelodyEncoding()


def tiny(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch == "lstm":
        return NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16))
    return MusicTransformer(TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32))


@pytest.fixture(params=["lstm", "transformer"])
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip_gives_the_same_model(tmp_path: Path, arch: str, suffix: str) -> None:
    model = tiny(arch).eval()
    path = save_checkpoint(tmp_path / f"m{suffix}", model, ENCODING, info={"valid_nll": 1.5})
    loaded, encoding, info = load_checkpoint(path, arch=arch, vocab_size=38, encoding=ENCODING)
    assert type(loaded) is type(model) and encoding == ENCODING and info == {"valid_nll": 1.5}
    assert not loaded.training
    tokens = torch.randint(0, 39, (2, 9))
    torch.testing.assert_close(loaded(tokens), model(tokens), rtol=0, atol=0)
    # the file's content decides its form, not its name
    renamed = path.rename(tmp_path / "renamed.bin")
    assert type(load_generator(str(renamed))[0]) is type(model)


def test_architecture_mismatch_names_file_and_both(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "lstm.pt", tiny("lstm"), ENCODING)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, arch="transformer")
    assert str(path) in str(error.value)
    assert "architecture mismatch" in str(error.value)
    assert "'lstm'" in str(error.value) and "'transformer'" in str(error.value)


def test_vocabulary_and_encoding_mismatch(tmp_path: Path, arch: str) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny(arch), ENCODING)
    with pytest.raises(
        CheckpointError, match=r"m\.safetensors: vocabulary mismatch.*38, expected 40"
    ):
        load_checkpoint(path, vocab_size=40)
    other = MelodyEncoding(min_pitch=36, max_pitch=83)
    with pytest.raises(CheckpointError, match=r"encoding mismatch: min_pitch=48 \(expected 36\)"):
        load_checkpoint(path, encoding=other)


def test_weights_that_do_not_fit_their_config(tmp_path: Path) -> None:
    record = generator_record(tiny("lstm"), ENCODING)
    record["config"]["hidden_size"] = 17
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: the weights do not fit a lstm"):
        load_checkpoint(tmp_path / "bad.pt")


def test_vocab_of_model_and_encoding_must_agree(tmp_path: Path) -> None:
    record = generator_record(tiny("lstm"), ENCODING)
    record["encoding"]["max_pitch"] = 84
    torch.save(record, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: inconsistent checkpoint"):
        load_checkpoint(tmp_path / "odd.pt")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = save_checkpoint(tmp_path / f"m{suffix}", tiny("transformer"), ENCODING)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"m\{suffix}: truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"\x00" * 64], ids=["empty", "text", "zeros"])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=r"x\.pt"):
        load_checkpoint(tmp_path / "x.pt")


def test_missing_file_and_foreign_dict(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(str(tmp_path / "nope.pt"))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not an rlmusic generator"):
        load_checkpoint(tmp_path / "foreign.pt")


class Exploit:
    """Unpickling this would create a marker file: loading must refuse before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickled_objects_are_refused_and_never_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    record = generator_record(tiny("lstm"), ENCODING)
    record["info"] = {"payload": Exploit(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(record, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(record, handle)
    with pytest.raises(CheckpointError) as error:
        load_generator(str(path))
    assert str(path) in str(error.value)
    assert "pickled" in str(error.value) or "not a torch checkpoint" in str(error.value)
    assert not marker.exists()


def test_build_model_errors_list_the_known_names() -> None:
    with pytest.raises(
        CheckpointError, match="unknown architecture 'gru'; known: lstm, transformer"
    ):
        build_model("gru", {})
    with pytest.raises(CheckpointError, match="no config field.*hiden_size"):
        build_model("lstm", {"hiden_size": 3})


def test_unknown_pretrained_name_lists_the_known_ones() -> None:
    with pytest.raises(CheckpointError) as error:
        load_generator("pretrained:note_lsmt")
    assert "note_lsmt" in str(error.value)
    for name in PRETRAINED:
        assert name in str(error.value)


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_shipped_models_load_offline_by_name(name: str) -> None:
    model, encoding = load_generator(f"pretrained:{name}")
    expected = ChoraleEncoding() if name.startswith("chorale_") else ENCODING
    assert model.arch == PRETRAINED[name][1] and encoding == expected
    path = Path(__file__).resolve().parents[1] / "rlmusic" / "models" / "pretrained"
    assert (path / PRETRAINED[name][0]).stat().st_size <= 10 * 1024 * 1024


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1834212\n"
)


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors", "best.pt"])
def test_git_lfs_pointer_says_run_git_lfs_pull(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(LFS_POINTER)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / name)
    message = str(error.value)
    assert str(tmp_path / name) in message
    assert "this is a Git LFS pointer" in message and "run `git lfs pull`" in message
    assert "1834212-byte" in message and "pickled" not in message
    if name == "best.pt":  # a run directory resolves to the pointer and says the same
        with pytest.raises(CheckpointError, match=r"best\.pt: this is a Git LFS pointer"):
            load_generator(str(tmp_path))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_non_finite_weights_are_refused_naming_the_tensors(tmp_path: Path, suffix: str) -> None:
    model = tiny("lstm")
    names = list(model.state_dict())
    with torch.no_grad():
        model.state_dict()[names[0]].view(-1)[0] = float("nan")
        model.state_dict()[names[-1]].view(-1)[:2] = float("inf")
    path = save_checkpoint(tmp_path / f"diverged{suffix}", model, ENCODING)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and "non-finite weights" in message
    assert f"{names[0]} (1 of" in message and f"{names[-1]} (2 of" in message
    assert "2 tensor(s)" in message
    for name in names[1:-1]:  # only the damaged tensors are named
        assert f"{name} (" not in message
