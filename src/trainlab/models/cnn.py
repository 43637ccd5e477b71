"""Convolutional networks: a configurable conv-block CNN, LeNet-5 and a small ResNet."""
from __future__ import annotations

import torch
from torch import nn

from trainlab.core.errors import UserError
from trainlab.models.activations import ACTIVATIONS, activation
from trainlab.models.mlp import mlp_layers
from trainlab.models.options import CNNConfig, LeNetConfig, ResNetConfig


def _check_image(name: str, input_shape: tuple) -> None:
    if len(input_shape) != 3:
        raise UserError(f"model {name!r} needs image inputs (C, H, W); the data gives shape {tuple(input_shape)}")


def _flat_size(features: nn.Module, input_shape: tuple) -> int:
    features.eval()  # one sample through BatchNorm on a 1x1 map is an error in training mode
    with torch.no_grad():
        size = int(features(torch.zeros(1, *input_shape)).numel())
    features.train()
    return size


def conv_block(c_in: int, c_out: int, k: int, pool: str, bn: bool, act: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(activation(act))
    if pool == "max":
        layers.append(nn.MaxPool2d(2))
    elif pool == "avg":
        layers.append(nn.AvgPool2d(2))
    elif pool != "none":
        raise UserError(f"bad value for model.pool: {pool!r}; expected max, avg or none")
    return nn.Sequential(*layers)


def build_cnn(cfg: CNNConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """Conv blocks (conv -> BN -> activation -> pool) and an MLP head; returns logits (B, num_outputs)."""
    _check_image("cnn", input_shape)
    ACTIVATIONS.entry(cfg.activation)
    if cfg.kernel_size > min(input_shape[1:]):  # the kernel's border would only ever see padding
        raise UserError(f"model.kernel_size={cfg.kernel_size} is larger than the {input_shape[1]}x{input_shape[2]} "
                        f"images; use at most {min(input_shape[1:])}")
    blocks, c = [], input_shape[0]
    for i, width in enumerate(cfg.channels):
        # stop pooling once the feature map is 1 pixel, so deep configs still work on 8x8 digits
        small = min(input_shape[1:]) // (2 ** i) < 2
        blocks.append(conv_block(c, width, cfg.kernel_size, "none" if small else cfg.pool, cfg.batch_norm,
                                 cfg.activation))
        c = width
    features = nn.Sequential(*blocks)
    head = mlp_layers(_flat_size(features, input_shape), cfg.hidden, num_outputs, cfg.activation, cfg.dropout, False)
    return nn.Sequential(features, *head)


def build_lenet5(cfg: LeNetConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """LeNet-5: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> outputs."""
    _check_image("lenet5", input_shape)
    pad = 2 if min(input_shape[1:]) < 32 else 0  # 28x28 MNIST is padded to LeNet's 32x32
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 6, 5, padding=pad), activation(cfg.activation), nn.AvgPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 16, 5, padding=pad if min(input_shape[1:]) < 16 else 0), activation(cfg.activation),
        nn.AvgPool2d(2, ceil_mode=True))
    head = mlp_layers(_flat_size(features, input_shape), [120, 84], num_outputs, cfg.activation, 0.0, False)
    return nn.Sequential(features, *head)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a skip connection; a 1x1 conv matches shapes when stride or width change."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.skip(x))


def build_resnet_small(cfg: ResNetConfig, input_shape: tuple, num_outputs: int, **info) -> nn.Module:
    """A small CIFAR-style ResNet: 3x3 stem, stages of BasicBlocks (stride 2 between), global average pool."""
    _check_image("resnet_small", input_shape)
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], cfg.width, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(cfg.width), nn.ReLU()]
    c = cfg.width
    for stage, n in enumerate(cfg.blocks):
        width = cfg.width * 2 ** stage
        for b in range(n):
            layers.append(BasicBlock(c, width, 2 if stage > 0 and b == 0 else 1))
            c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_outputs)]
    return nn.Sequential(*layers)
