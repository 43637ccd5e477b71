"""timm and torchvision models by name, through the libraries' own factories and registries.

    model = build_library_model("timm:convnext_atto", LibraryModelConfig(pretrained=True), (1, 28, 28), 10)
    library_names("convnext")                 # ["timm:convnext_atto", ..., "torchvision:convnext_tiny", ...]
    input_config("torchvision:resnet18")      # {"resize": 256, "crop": [224, 224], "mean": [...], ...}

The head is sized for the data's classes (`num_classes=`), and the input channels follow the data: timm
builds the stem with `in_chans=` (adapting pretrained stem weights itself); for torchvision the first conv
is rebuilt for the data's channels with timm's `adapt_input_conv` (grayscale: the RGB filters summed).
Pretrained weights come through the libraries' own download code (`model.pretrained: true`), from their own
caches when the file is there (the Hugging Face hub cache for timm, torch hub's `checkpoints/` for torchvision),
without touching the network. Otherwise one connection to the host is tried first (3 s, no retries): offline,
the error comes at once instead of after huggingface_hub's minute of retries, and says how to pass the file:
`model.weights: PATH` loads a local file with weights_only=True, shape-checked, and starts a head that does
not fit the class count afresh.
"""
from __future__ import annotations

import difflib
import math
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import timm
import torch
from timm.data import resolve_data_config
from timm.models import adapt_input_conv, get_pretrained_cfg, split_model_name_tag
from torch import nn
from torchvision import models as tvm

from trainlab.core.errors import UserError
from trainlab.models.heads import first_conv_name
from trainlab.models.options import LibraryModelConfig
from trainlab.models.weights import load_matching, read_weights

PROBE_SECONDS = 3.0  # one connection attempt to the weights' host before a download; offline: the error at once
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repo, in its order


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
        cached = timm_cached_file(default)
        if cached:  # timm loads it as it would the download (head and stem adapted), no request to the hub
            kwargs["pretrained_cfg_overlay"] = {"file": cached}
        else:
            check_reachable(f"timm:{model_name}", *timm_source(default))
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
        cache = torch_hub_file(weights.url)
        if not cache.is_file():  # cached: torchvision reads it without a request
            check_reachable(f"torchvision:{model_name}", weights.url, f"or put it at {cache}")
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)  # torchvision's download and cache
        except OSError as e:  # urllib's URLError is an OSError
            raise _download_error(f"torchvision:{model_name}", weights.url, e) from None
        load_matching(model, state, f"{weights} ({weights.url})")
    return model


def _download_error(name: str, where: str, e: Exception) -> UserError:
    detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
    return UserError(f"cannot download the pretrained weights of {name} from {where} (no internet? {detail}); "
                     f"download the file on a machine with internet and set model.weights=PATH "
                     f"model.pretrained=false")


# ----------------------------------------------------------------------------- offline: the cache, then one probe

def hf_split(hub_id: str) -> tuple[str, str | None]:
    """"timm/convnext_atto.d2_in1k@rev" -> (repo, "rev"); no "@": the default revision (None), as timm reads it."""
    repo, _, revision = hub_id.partition("@")
    return repo, revision or None


def torch_hub_file(url: str) -> Path:
    """Where torch.hub (torchvision's download) caches `url`: TORCH_HOME/hub/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def timm_cached_file(cfg) -> str | None:
    """The weights of a timm pretrained config already on disk: in the hub cache (HF_HOME) or, for a config that
    also has a URL, in torch hub's checkpoints/ (timm's older cache); None when neither holds them."""
    if cfg.hf_hub_id:
        repo, revision = hf_split(cfg.hf_hub_id)
        for name in ([cfg.hf_hub_filename] if cfg.hf_hub_filename else HUB_FILES):
            found = huggingface_hub.try_to_load_from_cache(repo, name, revision=revision)
            if isinstance(found, str):  # else None (never fetched) or a marker that the hub has no such file
                return found
    if cfg.url and torch_hub_file(cfg.url).is_file():
        return str(torch_hub_file(cfg.url))
    return None


def timm_source(cfg) -> tuple[str, str]:
    """(the URL timm would fetch first, where else the file could go) for a pretrained config."""
    if cfg.hf_hub_id:
        repo, revision = hf_split(cfg.hf_hub_id)
        name = cfg.hf_hub_filename or HUB_FILES[0]
        return (f"{huggingface_hub.constants.ENDPOINT}/{repo}/resolve/{revision or 'main'}/{name}",
                f"(if the repository has no {name}: {HUB_FILES[1]})")
    return cfg.url, f"or put it at {torch_hub_file(cfg.url)}"


def unreachable(url: str, seconds: float = PROBE_SECONDS) -> str | None:
    """Why `url`'s host takes no connection within `seconds` (one try, no retries), or None when it does."""
    if huggingface_hub.constants.HF_HUB_OFFLINE and url.startswith(huggingface_hub.constants.ENDPOINT):
        return "HF_HUB_OFFLINE is set"
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    failure: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=seconds).close()
        except OSError as e:
            failure.append(str(e) or type(e).__name__)

    # a thread because name resolution (getaddrinfo) takes no timeout: a stuck DNS must not hang the command
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(seconds + 0.5)
    if probe.is_alive():
        return f"no answer within {seconds:g} s"
    return failure[0] if failure else None


def check_reachable(name: str, url: str, elsewhere: str) -> None:
    """A one-line UserError, at once, when the weights are not cached and their host cannot be reached."""
    why = unreachable(url)
    if why is None:
        return
    host = urlparse(url).netloc
    raise UserError(f"model.pretrained: the weights of {name} are not in the local cache and {host} cannot be "
                    f"reached ({why[:80]}): this machine looks offline. Download {url} on a machine with "
                    f"internet and set model.weights=PATH model.pretrained=false (a .safetensors or .pt/.pth "
                    f"state_dict; {elsewhere}), or train from scratch with model.pretrained=false")


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
