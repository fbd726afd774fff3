"""Adapters: how specs of each ``source`` become backbones (libraries imported lazily)."""

from __future__ import annotations

from ._registry import adapter_hint

adapter_hint("timm", "Install it with: pip install 'repmatch[timm]'.")
adapter_hint("transformers", "Install it with: pip install 'repmatch[text]' (brings transformers).")
adapter_hint("dreamsim", "DreamSim's code is not installable offline here; install `dreamsim` "
             "and register a builder wrapping dreamsim's embed().")
adapter_hint("radio", "RADIO loads as Hugging Face remote code (trust_remote_code=True) from a "
             "local snapshot of nvidia/C-RADIOv3-L; register a builder returning its summary.")
adapter_hint("flux_vae", "The FLUX VAE needs `diffusers` (AutoencoderKL) and a local FLUX.1 "
             "snapshot; register a builder returning the 4x4 patch-mean of the latent mean.")
