"""Tests for weight resolution, download, checkpoint reading and model loading.

Downloads go to a real HTTP server on 127.0.0.1 that serves a temporary
directory; no test touches the internet or the user's cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from napari_gifnet.model import weights as W
from napari_gifnet.model.network import GIFNet


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{W.CACHE_FILENAME}"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Private cache dir, no GIFNET_WEIGHTS, downloads pointed at a closed port."""
    cache = tmp_path / "cache"
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(W.CACHE_ENV, str(cache))
    monkeypatch.setenv(W.URL_ENV, _closed_port_url())
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    W.clear_model_cache()
    yield cache
    W.clear_model_cache()


class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                server.requests.append(self.path)
                super().do_GET()

            def do_HEAD(self) -> None:  # noqa: N802
                server.requests.append("HEAD " + self.path)
                super().do_HEAD()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str = W.CACHE_FILENAME) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    srv = _Server(root)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=5)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------- resolution


def test_argument_beats_environment_beats_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    _isolated.mkdir()
    shutil.copyfile(reference_weights, _isolated / W.CACHE_FILENAME)
    arg = tmp_path / "arg.pth"
    arg.write_bytes(b"argument file")
    env = tmp_path / "env.pth"
    env.write_bytes(b"environment file")
    monkeypatch.setenv(W.WEIGHTS_ENV, str(env))

    info = W.resolve_weights(arg)
    assert (info.path, info.source) == (arg.absolute(), "argument")
    assert info.sha256 == _sha256(arg)

    info = W.resolve_weights()
    assert (info.path, info.source) == (env.absolute(), "environment")
    assert info.sha256 == _sha256(env)

    monkeypatch.delenv(W.WEIGHTS_ENV)
    info = W.resolve_weights()
    assert (info.path, info.source) == (_isolated / W.CACHE_FILENAME, "cache")
    assert info.sha256 == W.OFFICIAL_SHA256


def test_missing_argument_names_path_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.pth"
    good.write_bytes(b"x")
    monkeypatch.setenv(W.WEIGHTS_ENV, str(good))  # must not be fallen back to
    missing = tmp_path / "nope" / "missing.pth"
    with pytest.raises(FileNotFoundError) as exc:
        W.resolve_weights(missing)
    assert str(missing) in str(exc.value)
    assert "argument" in str(exc.value)


def test_missing_environment_names_path_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.pth"
    monkeypatch.setenv(W.WEIGHTS_ENV, str(missing))
    with pytest.raises(FileNotFoundError) as exc:
        W.resolve_weights()
    assert str(missing) in str(exc.value)
    assert W.WEIGHTS_ENV in str(exc.value)


def test_directory_argument_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a file"):
        W.resolve_weights(tmp_path)


# ----------------------------------------------------------------- download


def test_download_then_cache(
    server: _Server, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    shutil.copyfile(reference_weights, server.root / W.CACHE_FILENAME)
    monkeypatch.setenv(W.URL_ENV, server.url())

    info = W.resolve_weights()
    assert info.source == "download"
    assert info.path == _isolated / W.CACHE_FILENAME
    assert info.path.stat().st_size == W.OFFICIAL_SIZE
    assert _sha256(info.path) == info.sha256 == W.OFFICIAL_SHA256
    assert sorted(p.name for p in _isolated.iterdir()) == [W.CACHE_FILENAME]
    hits = len(server.requests)
    assert hits >= 1

    again = W.resolve_weights()
    assert (again.path, again.source) == (info.path, "cache")
    assert len(server.requests) == hits


def test_corrupt_download_rejected_and_not_cached(
    server: _Server, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    data = bytearray(reference_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (server.root / W.CACHE_FILENAME).write_bytes(bytes(data))
    monkeypatch.setenv(W.URL_ENV, server.url())

    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve_weights()
    message = str(exc.value)
    assert "sha256" in message and W.OFFICIAL_SHA256 in message
    assert server.url() in message
    assert server.requests, "the server was not asked"
    assert not _isolated.exists() or list(_isolated.iterdir()) == []


FOREIGN = b"a fine-tuned checkpoint of the user's, put in the cache by hand"
FOREIGN_SHA = hashlib.sha256(FOREIGN).hexdigest()


def test_wrong_cached_file_is_moved_aside_after_a_verified_download(
    server: _Server, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    _isolated.mkdir()
    (_isolated / W.CACHE_FILENAME).write_bytes(FOREIGN)
    aside = _isolated / f"{W.CACHE_FILENAME}.foreign-{FOREIGN_SHA[:12]}"
    shutil.copyfile(reference_weights, server.root / W.CACHE_FILENAME)
    monkeypatch.setenv(W.URL_ENV, server.url())

    with pytest.warns(UserWarning, match="moved to .*foreign-" + FOREIGN_SHA[:12]) as record:
        info = W.resolve_weights()
    assert str(aside) in str(record[0].message)
    assert (info.source, info.path) == ("download", _isolated / W.CACHE_FILENAME)
    assert _sha256(info.path) == W.OFFICIAL_SHA256
    assert aside.read_bytes() == FOREIGN  # kept byte for byte
    assert sorted(p.name for p in _isolated.iterdir()) == sorted([W.CACHE_FILENAME, aside.name])


def test_an_earlier_foreign_file_is_not_overwritten(
    server: _Server, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    _isolated.mkdir()
    (_isolated / W.CACHE_FILENAME).write_bytes(FOREIGN)
    earlier = _isolated / f"{W.CACHE_FILENAME}.foreign-{FOREIGN_SHA[:12]}"
    earlier.write_bytes(b"moved aside before")
    shutil.copyfile(reference_weights, server.root / W.CACHE_FILENAME)
    monkeypatch.setenv(W.URL_ENV, server.url())

    with pytest.warns(UserWarning, match="moved to"):
        W.resolve_weights()
    assert earlier.read_bytes() == b"moved aside before"
    moved = [p for p in _isolated.iterdir() if p.read_bytes() == FOREIGN]
    assert len(moved) == 1 and moved[0].name.startswith(earlier.name)
    assert _sha256(_isolated / W.CACHE_FILENAME) == W.OFFICIAL_SHA256


def test_wrong_cached_file_is_kept_when_the_download_is_corrupt(
    server: _Server, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    _isolated.mkdir()
    (_isolated / W.CACHE_FILENAME).write_bytes(FOREIGN)
    data = bytearray(reference_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (server.root / W.CACHE_FILENAME).write_bytes(bytes(data))
    monkeypatch.setenv(W.URL_ENV, server.url())

    with pytest.raises(W.WeightsUnavailableError, match="expected sha256"):
        W.resolve_weights()
    assert server.requests
    assert [p.name for p in _isolated.iterdir()] == [W.CACHE_FILENAME]
    assert (_isolated / W.CACHE_FILENAME).read_bytes() == FOREIGN


@pytest.mark.parametrize("download", [True, False])
def test_wrong_cached_file_is_kept_and_named_offline(_isolated: Path, download: bool) -> None:
    _isolated.mkdir()
    target = _isolated / W.CACHE_FILENAME
    target.write_bytes(FOREIGN)
    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve_weights(download=download)
    assert [p.name for p in _isolated.iterdir()] == [W.CACHE_FILENAME]
    assert target.read_bytes() == FOREIGN  # untouched
    message = str(exc.value)
    assert f"the cache holds {target}, a file with another sha256 ({FOREIGN_SHA})" in message
    assert "weights=" in message and W.WEIGHTS_ENV in message and "move it away" in message


def test_offline_error_says_what_where_and_hash(_isolated: Path) -> None:
    url = W.weights_url()
    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve_weights()
    message = str(exc.value)
    assert isinstance(exc.value, RuntimeError)
    assert url in message
    assert W.OFFICIAL_SHA256 in message
    assert str(_isolated / W.CACHE_FILENAME) in message
    assert W.WEIGHTS_ENV in message
    assert not (_isolated / W.CACHE_FILENAME).exists()


def test_mirror_error_also_names_official_url(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(W.URL_ENV, server.url("absent.pth"))
    with pytest.raises(W.WeightsUnavailableError) as exc:
        W.resolve_weights()
    assert server.url("absent.pth") in str(exc.value) and W.OFFICIAL_URL in str(exc.value)


def test_http_404_is_unavailable(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(W.URL_ENV, server.url("absent.pth"))
    with pytest.raises(W.WeightsUnavailableError, match="404"):
        W.resolve_weights()


def test_no_download_when_disabled(_isolated: Path) -> None:
    with pytest.raises(W.WeightsUnavailableError, match="downloading is off"):
        W.resolve_weights(download=False)


def test_default_url_and_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(W.URL_ENV)
    monkeypatch.delenv(W.CACHE_ENV)
    assert W.weights_url() == W.OFFICIAL_URL
    assert W.OFFICIAL_URL.startswith("https://")
    assert "napari-gifnet" in str(W.cache_dir())


# ---------------------------------------------------------- checkpoint files


def _assert_clean_checkpoint_error(exc: pytest.ExceptionInfo[W.CheckpointError], path: Path) -> None:
    assert isinstance(exc.value, ValueError)
    assert str(path) in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_load_checkpoint_rejects_text_png_and_empty(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    png = tmp_path / "image.pth"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (text, png, empty):
        with pytest.raises(W.CheckpointError) as exc:
            W.load_checkpoint(path)
        _assert_clean_checkpoint_error(exc, path)


def test_load_checkpoint_rejects_truncated(tmp_path: Path, reference_weights: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(reference_weights.read_bytes()[: W.OFFICIAL_SIZE // 2])
    with pytest.raises(W.CheckpointError) as exc:
        W.load_checkpoint(truncated)
    _assert_clean_checkpoint_error(exc, truncated)


def test_load_checkpoint_never_passes_on_torchs_weights_only_advice(tmp_path: Path) -> None:
    import fractions

    path = tmp_path / "objects.pth"
    torch.save({"a": torch.ones(1), "b": fractions.Fraction(1, 3)}, path)  # a non-tensor global
    with pytest.raises(W.CheckpointError) as exc:
        W.load_checkpoint(path)
    _assert_clean_checkpoint_error(exc, path)
    message = str(exc.value)
    assert "weights_only" not in message and "can still be loaded" not in message
    assert message.startswith(f"{path} is not a GIFNet checkpoint: ")
    assert "fractions.Fraction" in message
    assert message.endswith(W.CHECKPOINT_HINT)
    assert "A GIFNet checkpoint is a PyTorch state_dict of tensors" in message


def test_load_checkpoint_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        W.load_checkpoint(tmp_path / "missing.pth")


@pytest.mark.parametrize("wrapper", ["state_dict", "model", None])
def test_load_checkpoint_unwraps_and_strips_module(tmp_path: Path, wrapper: str | None) -> None:
    tensors = {"module.a.weight": torch.arange(6.0).reshape(2, 3), "module.b": torch.ones(1)}
    obj: object = tensors if wrapper is None else {wrapper: tensors, "epoch": 3}
    path = tmp_path / "wrapped.pth"
    torch.save(obj, path)
    state = W.load_checkpoint(path)
    assert sorted(state) == ["a.weight", "b"]
    assert torch.equal(state["a.weight"], tensors["module.a.weight"])


def test_load_checkpoint_rejects_non_tensor_entries(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"a": torch.ones(1), "lr": 0.1}, path)
    with pytest.raises(W.CheckpointError, match="'lr'"):
        W.load_checkpoint(path)
    torch.save([torch.ones(1)], path)
    with pytest.raises(W.CheckpointError, match="not a GIFNet checkpoint"):
        W.load_checkpoint(path)


@pytest.fixture(scope="module")
def model_and_state() -> tuple[GIFNet, dict[str, torch.Tensor]]:
    model = GIFNet()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def test_validate_accepts_matching_state(model_and_state: tuple[GIFNet, dict[str, torch.Tensor]]) -> None:
    model, state = model_and_state
    W.validate_state_dict(state, model)


def test_validate_names_renamed_key(model_and_state: tuple[GIFNet, dict[str, torch.Tensor]]) -> None:
    model, state = model_and_state
    key = list(state)[5]
    bad = dict(state)
    bad[key + "_renamed"] = bad.pop(key)
    with pytest.raises(W.CheckpointError) as exc:
        W.validate_state_dict(bad, model, "my.pth")
    message = str(exc.value)
    assert f"missing key {key!r}" in message
    assert "my.pth is not a GIFNet checkpoint" in message


def test_validate_names_reshaped_key(model_and_state: tuple[GIFNet, dict[str, torch.Tensor]]) -> None:
    model, state = model_and_state
    key = next(k for k, v in state.items() if v.dim() == 4)
    bad = dict(state)
    bad[key] = bad[key].reshape(1, -1, 1, 1)
    with pytest.raises(W.CheckpointError) as exc:
        W.validate_state_dict(bad, model)
    message = str(exc.value)
    assert key in message
    assert str(tuple(bad[key].shape)) in message and str(tuple(state[key].shape)) in message


def test_validate_names_extra_key(model_and_state: tuple[GIFNet, dict[str, torch.Tensor]]) -> None:
    model, state = model_and_state
    bad = dict(state)
    bad["extra.head.weight"] = torch.zeros(3)
    with pytest.raises(W.CheckpointError, match=r"unexpected key 'extra\.head\.weight'"):
        W.validate_state_dict(bad, model)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_validate_refuses_non_finite_tensors(
    model_and_state: tuple[GIFNet, dict[str, torch.Tensor]], value: float
) -> None:
    model, state = model_and_state
    key = next(k for k, v in state.items() if v.dim() == 4)
    bad = dict(state)
    bad[key] = bad[key].clone()
    bad[key].view(-1)[:3] = value
    with pytest.raises(W.CheckpointError) as exc:
        W.validate_state_dict(bad, model, "my.pth")
    message = str(exc.value)
    assert message.startswith("my.pth is not a usable GIFNet checkpoint")
    assert f"{key!r} holds 3 non-finite value(s)" in message


def _largest_tensor_data(path: Path) -> tuple[int, int]:
    """Offset and size of the largest tensor's bytes in a (stored, zip) checkpoint."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda e: e.file_size)
    assert entry.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as fh:
        fh.seek(entry.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
    return entry.header_offset + 30 + name_len + extra_len, entry.file_size


def test_load_model_refuses_bytes_damaged_in_the_middle(tmp_path: Path, reference_weights: Path) -> None:
    start, size = _largest_tensor_data(reference_weights)
    data = bytearray(reference_weights.read_bytes())
    middle = start + size // 2 // 4 * 4  # float32-aligned inside the tensor's data
    data[middle : middle + 64] = b"\xff" * 64  # 16 NaN float32 values
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    with pytest.raises(W.CheckpointError) as exc:
        W.load_model(damaged)
    message = str(exc.value)
    assert str(damaged) in message and "16 non-finite value(s)" in message


def test_load_model_refuses_a_nan_checkpoint(tmp_path: Path, reference_weights: Path) -> None:
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    key = next(iter(state))
    state[key] = torch.full_like(state[key], float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(W.CheckpointError, match="non-finite") as exc:
        W.load_model(path)
    assert str(path) in str(exc.value) and repr(key.removeprefix("module.")) in str(exc.value)
    text = W.describe_weights_search(path)
    assert f"Found: ERROR: {path} is not a usable GIFNet checkpoint" in text


# -------------------------------------------------------------------- model


def test_load_model_reference(reference_weights: Path) -> None:
    model, info = W.load_model(reference_weights)
    assert isinstance(model, GIFNet)
    assert info.source == "argument" and info.sha256 == W.OFFICIAL_SHA256
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key

    conv = model.getSharedFeatures.conv_1.conv2d.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)

    again, info2 = W.load_model(str(reference_weights), device=torch.device("cpu"))
    assert again is model
    assert info2 == info


def test_load_model_cache_follows_file_changes(tmp_path: Path, reference_weights: Path) -> None:
    path = tmp_path / "copy.pth"
    shutil.copyfile(reference_weights, path)
    first, _ = W.load_model(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second, _ = W.load_model(path)
    assert second is not first
    assert W.load_model(path)[0] is second


def test_load_model_rejects_foreign_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, path)
    with pytest.raises(W.CheckpointError) as exc:
        W.load_model(path)
    assert str(path) in str(exc.value) and "not a GIFNet checkpoint" in str(exc.value)


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert W.file_sha256(path) == _sha256(path)


# ---------------------------------------------------------------- describe


def test_describe_empty_search(_isolated: Path) -> None:
    text = W.describe_weights_search()
    assert f"{W.WEIGHTS_ENV}: not set" in text
    assert str(_isolated) in text and "not present" in text
    assert W.weights_url() in text and W.OFFICIAL_SHA256 in text
    assert text.index("argument") < text.index(W.WEIGHTS_ENV) < text.index("cache") < text.index("download")


def test_describe_finds_cache_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path, reference_weights: Path
) -> None:
    _isolated.mkdir()
    shutil.copyfile(reference_weights, _isolated / W.CACHE_FILENAME)
    text = W.describe_weights_search()
    assert "present, 3,408,450 bytes, sha256 OK" in text
    assert f"Found: {_isolated / W.CACHE_FILENAME} (cache)" in text

    env = tmp_path / "env.pth"
    shutil.copyfile(reference_weights, env)
    monkeypatch.setenv(W.WEIGHTS_ENV, str(env))
    text = W.describe_weights_search()
    assert f"Found: {env} (environment)" in text


def test_describe_checks_a_named_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"these are not weights\n")
    monkeypatch.setenv(W.WEIGHTS_ENV, str(garbage))
    text = W.describe_weights_search()
    assert f"Found: ERROR: {garbage} is not a GIFNet checkpoint: " in text
    assert f"Found: {garbage} (environment)" not in text

    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, other)
    text = W.describe_weights_search(other)
    assert f"Found: ERROR: {other} is not a GIFNet checkpoint: missing key" in text


def test_describe_names_a_foreign_cached_file_and_keeps_it(_isolated: Path) -> None:
    _isolated.mkdir()
    target = _isolated / W.CACHE_FILENAME
    target.write_bytes(FOREIGN)
    text = W.describe_weights_search()
    assert "will be replaced" not in text
    assert f"the cache holds {target}, a file with another sha256 ({FOREIGN_SHA})" in text
    assert W.WEIGHTS_ENV in text and "move it away" in text
    assert f"{W.CACHE_FILENAME}.foreign-{FOREIGN_SHA[:12]}" in text
    assert target.read_bytes() == FOREIGN
