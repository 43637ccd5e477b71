"""timm and torchvision models by name, through the libraries' own factories and registries.

    model = build_library_model("timm:convnext_atto", LibraryModelConfig(pretrained=True), (1, 28, 28), 10)
    library_names("convnext")                 # ["timm:convnext_atto", ..., "torchvision:convnext_tiny", ...]
    input_config("torchvision:resnet18")      # {"resize": 256, "crop": [224, 224], "mean": [...], ...}

The head is sized for the data's classes (`num_classes=`), and the input channels follow the data: timm
builds the stem with `in_chans=` (adapting pretrained stem weights itself); for torchvision the first conv
is rebuilt for the data's channels with timm's `adapt_input_conv` (grayscale: the RGB filters summed).
Pretrained weights come through the libraries' own download code (`model.pretrained: true`); offline,
`model.weights: PATH` loads a local file with weights_only=True, shape-checked, and starts a head that does
not fit the class count afresh.
"""
from __future__ import annotations

import difflib
import math
import pickle
from pathlib import Path

import timm
import torch
from timm.data import resolve_data_config
from timm.models import adapt_input_conv, get_pretrained_cfg, split_model_name_tag
from torch import nn
from torchvision import models as tvm

from trainlab.core.errors import UserError
from trainlab.core.report import print_progress
from trainlab.models.heads import first_conv_name, head_names
from trainlab.models.options import LibraryModelConfig


def split_name(name: str) -> tuple[str, str]:
    """"timm:convnext_atto" -> ("timm", "convnext_atto")."""
    library, _, model = name.partition(":")
    return library, model


def library_names(pattern: str = "*") -> list[str]:
    """timm and torchvision classification models whose names match `pattern` (a substring or a glob)."""
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    return ([f"timm:{n}" for n in timm.list_models(glob)]
            + [f"torchvision:{n}" for n in tvm.list_models(module=tvm, include=glob)])


def check_model_name(name: str) -> None:
    """A one-line UserError when the library has no such model (with the closest names)."""
    library, model = split_name(name)
    if library == "timm":
        arch, tag = split_model_name_tag(model)
        known = timm.list_models()
        if timm.is_model(arch) and tag:
            try:
                get_pretrained_cfg(model, allow_unregistered=False)
                return
            except RuntimeError:
                raise UserError(f"timm model {arch!r} has no weights tagged {tag!r}; list them: "
                                f"trainlab list models --filter {arch}") from None
        if timm.is_model(arch):
            return
    else:
        known = tvm.list_models(module=tvm)
        if model in known:
            return
    close = difflib.get_close_matches(model, known, n=3)
    hint = f"; did you mean {', '.join(f'{library}:{c}' for c in close)}?" if close else ""
    raise UserError(f"unknown {library} model {model!r}{hint} (trainlab list models --filter PATTERN)")


def input_config(name: str, image_size: int | None = None) -> dict:
    """The model's expected eval preprocessing: resize (shorter side), center crop, mean/std, interpolation.

    timm: its data config (`resolve_data_config`: crop = input_size, resize = crop / crop_pct, as timm's eval
    transform); torchvision: the DEFAULT weights' `transforms()`. `image_size` scales both to a new crop side.
    """
    library, model = split_name(name)
    if library == "timm":
        cfg = resolve_data_config(pretrained_cfg=get_pretrained_cfg(model).to_dict())
        crop = [image_size] * 2 if image_size else list(cfg["input_size"][1:])
        resize, source = math.floor(crop[0] / cfg["crop_pct"]), f"timm data config of {model}"
        mean, std, interpolation = cfg["mean"], cfg["std"], cfg["interpolation"]
    else:
        weights = tvm.get_model_weights(model).DEFAULT
        t = weights.transforms()
        crop = [image_size or t.crop_size[0]] * 2
        resize, source = math.floor(crop[0] * t.resize_size[0] / t.crop_size[0]), f"transforms() of {weights}"
        mean, std, interpolation = t.mean, t.std, t.interpolation.value
    return {"source": source, "resize": int(resize), "crop": [int(c) for c in crop], "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], "interpolation": str(interpolation)}


# ----------------------------------------------------------------------------- building

def build_library_model(name: str, cfg: LibraryModelConfig, input_shape: tuple, num_outputs: int) -> nn.Module:
    """`timm:NAME` / `torchvision:NAME` with `num_outputs` outputs for inputs (C, H, W); weights as configured."""
    if len(input_shape) != 3:
        raise UserError(f"model {name} needs image inputs (C, H, W); the data gives samples of shape "
                        f"{tuple(input_shape)}")
    library, model_name = split_name(name)
    build = _timm if library == "timm" else _torchvision
    model = build(model_name, cfg.pretrained, input_shape, num_outputs)
    if cfg.weights:
        load_matching(model, read_weights(cfg.weights), cfg.weights)
    return model


def _timm(model_name: str, pretrained: bool, input_shape: tuple, num_outputs: int) -> nn.Module:
    kwargs = {"num_classes": num_outputs, "in_chans": input_shape[0]}
    default = get_pretrained_cfg(model_name)
    if default is not None and default.fixed_input_size and list(default.input_size[1:]) != list(input_shape[1:]):
        kwargs["img_size"] = tuple(input_shape[1:])  # ViTs: position embeddings for this size (timm resamples them)
    where = ""
    if pretrained and default is not None:
        where = f"https://huggingface.co/{default.hf_hub_id}" if default.hf_hub_id else default.url
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except OSError as e:  # no connection, or no such file in the hub / cache
        raise _download_error(f"timm:{model_name}", where or "the Hugging Face hub", e) from None


def _torchvision(model_name: str, pretrained: bool, input_shape: tuple, num_outputs: int) -> nn.Module:
    model = tvm.get_model(model_name, weights=None, num_classes=num_outputs)
    if input_shape[0] != 3:
        adapt_stem(model, input_shape[0])
    if pretrained:
        weights = tvm.get_model_weights(model_name).DEFAULT
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)  # torchvision's download and cache
        except OSError as e:  # urllib's URLError is an OSError
            raise _download_error(f"torchvision:{model_name}", weights.url, e) from None
        load_matching(model, state, f"{weights} ({weights.url})")
    return model


def _download_error(name: str, where: str, e: Exception) -> UserError:
    detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
    return UserError(f"cannot download the pretrained weights of {name} from {where} (no internet? {detail}); "
                     f"download the file on a machine with internet and set model.weights: PATH, "
                     f"model.pretrained: false")


def adapt_stem(model: nn.Module, in_chans: int) -> None:
    """Rebuild the first conv for `in_chans` input channels, its weights adapted as timm does for in_chans."""
    path = first_conv_name(model)
    conv = model.get_submodule(path)
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(in_chans, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


# ----------------------------------------------------------------------------- local weights

def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .pt/.pth file (plain, or a checkpoint holding `model` / `state_dict`) or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.weights: file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # optional heavy dependency: comes with timm

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"refusing to load model.weights {path}: not a plain weights file (weights_only=True: "
                        f"{str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # noqa: BLE001  truncated or random bytes fail deep inside the unpickler
        raise UserError(f"cannot read model.weights {path}: {str(e).splitlines()[0][:120]}") from None
    for key in ("model", "state_dict"):  # a trainlab checkpoint (best.pt, last.pt) or a common training script's
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"model.weights {path} holds no state_dict (a mapping of parameter names to tensors)")
    return obj


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


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load `state` into `model`, shape-checked; returns the head keys left out (another class count).

    A head tensor of another shape (1000 ImageNet classes vs the data's) is skipped and the model's new head
    kept; a 3-channel stem for a 1-channel model is adapted (timm's adapt_input_conv). Any other missing,
    unexpected or mismatched tensor is a one-line error naming the first one.
    """
    own, heads, stem = model.state_dict(), head_names(model), first_conv_name(model)

    def in_head(key: str) -> bool:
        return any(key.startswith(f"{h}.") for h in heads)

    kept, skipped = {}, []
    for key, tensor in state.items():
        if key not in own:
            raise UserError(f"{source} has tensor {key!r} that the model does not have; is it a file for "
                            f"another architecture?")
        want = tuple(own[key].shape)
        check_dtype(tensor, own[key], key, source)
        if tuple(tensor.shape) == want:
            kept[key] = tensor
        elif in_head(key):
            skipped.append(key)
        elif (key == f"{stem}.weight" and tensor.ndim == 4 and tensor.shape[0] == want[0]
              and tensor.shape[2:] == want[2:]):
            kept[key] = adapt_input_conv(want[1], tensor)
        else:
            raise UserError(f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} but the model expects {want}")
    missing = [k for k in own if k not in kept and not in_head(k) and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"{source} lacks tensor {missing[0]!r} that the model needs; is it a file for another "
                        f"architecture?")
    model.load_state_dict(kept, strict=False)
    if skipped or not any(in_head(k) for k in kept):
        print_progress(f"note: {source}: the head ({', '.join(heads)}) starts fresh: "
              + (f"the file's has shape {tuple(state[skipped[0]].shape)}, this data needs "
                 f"{tuple(own[skipped[0]].shape)}" if skipped else "the file has none"), warning=True)
    return skipped
