"""Weights in the store: one safetensors file per run and step, beside runs/ and curves/, local or on an
object store (the same roots as `grokscan.results.store`).

Layout: ``weights/<run_id>/step-<step>.safetensors`` (weights after `step` updates, at the steps a sweep's
`record` lists) and ``weights/<run_id>/final.safetensors`` (the weights the run ended with; its metadata
names the step). Tensor names are the model's parameter layout (`grokscan.engine.models.layout.Model.views`:
``embed``, ``w0``, ``l0.q``, ...), shapes without the pack's member dimension. safetensors holds raw arrays
and a JSON header, nothing executable (unlike pickle), and reads in numpy, torch, JAX alike. A file is
written whole (temp name then rename locally; S3 PUTs are whole), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import re

import numpy as np
import safetensors.numpy
from pyarrow import fs as pafs

from grokscan.errors import UserError
from grokscan.results.store import _resolve, put_whole

RUN_ID = re.compile(r"^[0-9a-f]{16}$")
FINAL = "final"


def _file(step: int | None) -> str:
    return f"{FINAL}.safetensors" if step is None else f"step-{step}.safetensors"


def _folder(root: str, run_id: str) -> tuple[pafs.FileSystem, str]:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise UserError(f"run_id {run_id!r} is invalid: a grokscan run id is 16 hex digits")
    filesystem, base = _resolve(root)
    return filesystem, f"{base}/weights/{run_id}"


def write_weights(
    root: str, run_id: str, step: int, tensors: dict[str, np.ndarray], final: bool = False
) -> None:
    """Store one run's named weights after `step` updates (as its final weights when `final`)."""
    filesystem, folder = _folder(root, run_id)
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    meta = {"run_id": run_id, "step": str(step), "names": json.dumps(list(arrays))}  # the layout's order
    data = safetensors.numpy.save(arrays, metadata=meta)
    put_whole(filesystem, folder, _file(None if final else step), data)


def stored_weights(root: str, run_id: str) -> list[int | str]:
    """The steps with stored weights of `run_id` (ascending), and "final" when its final weights are."""
    filesystem, folder = _folder(root, run_id)
    infos = filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    names = {info.base_name for info in infos if info.base_name.endswith(".safetensors")}
    steps = sorted(int(n[5:-12]) for n in names if re.fullmatch(r"step-\d+\.safetensors", n))
    return [*steps, *([FINAL] if _file(None) in names else [])]


def load_weights(root: str, run_id: str, step: int | None = None) -> dict[str, np.ndarray]:
    """A stored run's named weights (numpy arrays; ``torch.from_numpy`` makes tensors of them): its final
    weights, or those after `step` updates. UserError naming what is stored when they are not."""
    filesystem, folder = _folder(root, run_id)
    path = f"{folder}/{_file(step)}"
    try:
        with filesystem.open_input_file(path) as f:
            data = f.read()
    except FileNotFoundError:
        data = _final_at(filesystem, folder, step)
        if data is None:
            stored = stored_weights(root, run_id)
            what = "final weights" if step is None else f"weights at step {step}"
            have = ", ".join(map(str, stored)) if stored else "none"
            raise UserError(f"no {what} of run {run_id} under {root} (stored: {have})") from None
    tensors = safetensors.numpy.load(data)
    order = json.loads(_metadata(data).get("names", "[]"))
    return {name: tensors[name] for name in [*order, *sorted(set(tensors) - set(order))]}


def _final_at(filesystem: pafs.FileSystem, folder: str, step: int | None) -> bytes | None:
    """The final file's bytes when the run ended at `step` (a listed step can be its last)."""
    if step is None:
        return None
    try:
        with filesystem.open_input_file(f"{folder}/{_file(None)}") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return data if _metadata(data).get("step") == str(step) else None


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's __metadata__ (format: 8-byte little-endian header length, JSON header)."""
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
