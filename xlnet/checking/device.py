"""Where torch runs: the GPU when there is one, else the CPU."""

from __future__ import annotations

from ..errors import DeviceError, option


def pick_device(device="auto"):
    """Return the torch device: ``cuda`` when available (or asked for), else ``cpu``.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or a torch.device.

    Returns:
        A torch.device; DeviceError when ``cuda`` is asked for and torch sees no GPU.
    """
    if isinstance(device, str) or device is None:
        check_name(device)
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{option('device')} cuda: torch sees no CUDA GPU here; use {option('device')} cpu")
    return torch.device(device)


def check_name(device):
    """Raise DeviceError unless ``device`` is auto, cpu or cuda (no torch needed)."""
    if device not in (None, "auto", "cpu", "cuda"):
        raise DeviceError(f"{option('device')} {device}: expected cpu, cuda or auto")
