"""Starting weights from a local file (`model.weights: PATH`): read safely, matched to the model tensor by tensor.

    state = read_weights("resnet18.safetensors")        # .pt/.pth (weights_only) or .safetensors
    load_matching(model, state, "resnet18.safetensors")  # head of another class count skipped, RGB stem adapted

Whatever the file holds (truncated, crafted, another architecture, another channel count), a problem is one
UserError line that names the file, what it holds and what the model would need.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

from trainlab.core.checkpoint import unpickling_refusal
from trainlab.core.errors import UserError
from trainlab.core.report import print_progress
from trainlab.models.heads import first_conv_name, head_names

MAX_HEADER = 100 * 2**20  # the safetensors library's own bound on a header's JSON


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .pt/.pth file (plain, or a checkpoint holding `model` / `state_dict`) or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.weights: file not found: {path}")
    if os.path.getsize(path) == 0:
        raise UserError(f"model.weights {path} is empty (0 bytes); was its download or copy interrupted?")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"refusing to load model.weights {path}: not a plain weights file (weights_only=True: "
                        f"{unpickling_refusal(e)})") from None
    except Exception as e:  # noqa: BLE001  truncated or random bytes fail deep inside the unpickler
        raise UserError(f"cannot read model.weights {path}: truncated or not a PyTorch file ({_first_line(e)})") \
            from None
    for key in ("model", "state_dict"):  # a trainlab checkpoint (best.pt, last.pt) or a common training script's
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"model.weights {path} holds no state_dict (a mapping of parameter names to tensors)")
    return obj


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Check the header (8-byte little-endian length, then JSON) before handing the file to safetensors, so a
    truncated, garbage or crafted file is described rather than reported by the Rust parser's words alone."""
    from safetensors import SafetensorError  # optional heavy dependency: comes with timm
    from safetensors.torch import load_file  # optional heavy dependency, as above

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if length is None or length > min(size - 8, MAX_HEADER):
            got = "too short" if length is None else f"its header claims {length:,} bytes, the file has {size:,}"
            raise UserError(f"model.weights {path} is not a readable safetensors file ({got}): truncated, "
                            f"or not a safetensors file")
        try:
            header = json.loads(f.read(length))
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"model.weights {path} is not a safetensors file (its header is not JSON)") from None
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        tensors = [k for k in header if k != "__metadata__"] if isinstance(header, dict) else []
        raise UserError(f"model.weights {path} is a damaged safetensors file ({_first_line(e)}; its header "
                        f"lists {len(tensors)} tensors): truncated, or its data offsets overlap or leave gaps") \
            from None


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load `state` into `model`, shape-checked; returns the head keys left out (another class count).

    A head tensor of another shape (1000 ImageNet classes vs the data's) is skipped and the model's new head
    kept; a 3-channel (RGB) stem for a model of other input channels is adapted (timm's adapt_input_conv).
    Any other missing, unexpected or mismatched tensor is a one-line error naming the first one, with what
    the file holds and what the model expects.
    """
    own, heads, stem = model.state_dict(), head_names(model), first_conv_name(model)

    def in_head(key: str) -> bool:
        return any(key.startswith(f"{h}.") for h in heads)

    kept, skipped = {}, []
    for key, tensor in state.items():
        if key not in own:
            raise UserError(f"{source} has tensor {key!r} that the model does not have; {_compare(state, own)}")
        want = tuple(own[key].shape)
        check_dtype(tensor, own[key], key, source)
        if tuple(tensor.shape) == want:
            kept[key] = tensor
        elif in_head(key):
            skipped.append(key)
        elif key == f"{stem}.weight" and tensor.ndim == 4 and len(want) == 4 and tensor.shape[0] == want[0] \
                and tensor.shape[2:] == want[2:]:
            kept[key] = _adapted_stem(tensor, want, key, source)
        else:
            raise UserError(f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} but the model expects {want}; "
                            f"{_compare(state, own)}")
    missing = [k for k in own if k not in kept and not in_head(k) and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"{source} lacks tensor {missing[0]!r} that the model needs ({len(missing)} of the model's "
                        f"{len(own)} are missing); {_compare(state, own)}")
    try:
        model.load_state_dict(kept, strict=False)
    except RuntimeError as e:  # shapes were checked above; a dtype torch cannot copy is what is left
        raise UserError(f"{source} does not fit the model: {_first_line(e)}") from None
    if skipped or not any(in_head(k) for k in kept):
        print_progress(f"note: {source}: the head ({', '.join(heads)}) starts fresh: "
                       + (f"the file's has shape {tuple(state[skipped[0]].shape)}, this data needs "
                          f"{tuple(own[skipped[0]].shape)}" if skipped else "the file has none"), warning=True)
    return skipped


def _dtype_kind(dtype: torch.dtype) -> str:
    return ("complex" if dtype.is_complex else "floating-point" if dtype.is_floating_point
            else "bool" if dtype == torch.bool else "integer")


def check_dtype(tensor: torch.Tensor, own: torch.Tensor, key: str, source: str) -> None:
    """Refuse a tensor of another kind than the model's (int64, bool or complex for float weights): load_state_dict
    would cast it silently (complex -> its real part, bool -> 0/1), giving a model that is not the file's."""
    if _dtype_kind(tensor.dtype) != _dtype_kind(own.dtype):
        raise UserError(f"{source}: refusing tensor {key!r}: it holds {str(tensor.dtype).replace('torch.', '')} "
                        f"({_dtype_kind(tensor.dtype)}) values where the model has "
                        f"{str(own.dtype).replace('torch.', '')} ones; save the weights as floating-point tensors")


def _adapted_stem(tensor: torch.Tensor, want: tuple, key: str, source: str) -> torch.Tensor:
    """The file's first conv (out, in, kh, kw) for `want[1]` input channels: an RGB stem (in = 3) is summed to
    one channel or repeated to more, as timm does; a stem of other channels fits only data of its own count."""
    have = tensor.shape[1]
    if have != 3:
        raise UserError(f"{source}: the first conv {key!r} takes {have} input channel{'s' * (have != 1)} (shape "
                        f"{tuple(tensor.shape)}) but this data has {want[1]} (the model expects {want}); only a "
                        f"3-channel (RGB) stem is adapted to other inputs: use data with {have} "
                        f"channel{'s' * (have != 1)} or a file with an RGB stem")
    return adapt_input_conv(want[1], tensor)


def _compare(state: dict, own: dict) -> str:
    """What the file holds against what the model expects, in a few words, with a likely cause where one shows."""
    for prefix in ("module.", "model.", "_orig_mod.", "backbone."):
        if all(k.startswith(prefix) for k in state) and any(k[len(prefix):] in own for k in state):
            return (f"every name in the file starts with {prefix!r} (saved from a wrapper such as DataParallel or "
                    f"torch.compile?); save the inner model's state_dict or strip the prefix")
    common = sum(k in own for k in state)
    first = next(iter(state))
    return (f"the file holds {len(state)} tensors (first {first!r}), {common} of them named as in the model, which "
            f"has {len(own)} (first {next(iter(own))!r}); is it a file for another architecture or variant?")


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:160]
