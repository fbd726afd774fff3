"""The paper's 14-encoder panel (Table 5, Appendix B): ten training encoders, four held out.

Each encoder is read out as one pooled image embedding at the listed input resolution, with
no feature normalisation. Weights are never downloaded: a user supplies them (a file or a
local Hugging Face directory) through ``create(name, weights=...)`` or ``REPMATCH_WEIGHTS``
(see :func:`repmatch.represent.find_weights`). ``crop_pct=1`` everywhere: generated images are
full-frame, so the whole image is resized to the input resolution rather than centre-cropped.

Sources: ``timm`` (pip install 'repmatch[timm]'), ``torchvision`` (FID Inception),
``transformers`` (Web-SSL), and hook-only ``dreamsim``, ``radio``, ``flux_vae`` (their code is
not on the package registries; see ``register_adapter``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import EncoderSpec, register_encoder, register_panel

if TYPE_CHECKING:
    from .spec import MeanStd

IMAGENET: MeanStd = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
OPENAI_CLIP: MeanStd = {
    "mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711)
}
HALF: MeanStd = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # maps [0, 1] to [-1, 1]
IDENTITY: MeanStd = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # the model normalises itself

TRAIN10 = (
    EncoderSpec(
        name="inception_v3_fid", source="torchvision", checkpoint="pt_inception-2015-12-05",
        weights="pt_inception-2015-12-05-6726825d.pth", dim=2048, input_size=299,
        crop_mode="squash", pooling="avg", **HALF,
        description="FID Inception-v3 (Szegedy et al., 2016; pytorch-fid weights), 2048-d pool3.",
    ),
    EncoderSpec(
        name="convnextv2_base", source="timm", checkpoint="convnextv2_base.fcmae_ft_in22k_in1k",
        weights="timm/convnextv2_base.fcmae_ft_in22k_in1k", dim=1024, input_size=224,
        pooling="avg", **IMAGENET, description="ConvNeXt V2-B (Liu et al., 2022).",
    ),
    EncoderSpec(
        name="mae_vitl16", source="timm", checkpoint="vit_large_patch16_224.mae",
        weights="timm/vit_large_patch16_224.mae", dim=1024, input_size=224, pooling="avg",
        **IMAGENET, description="MAE ViT-L/16 (He et al., 2022).",
    ),
    EncoderSpec(
        name="clip_vitl14", source="timm", checkpoint="vit_large_patch14_clip_224.openai",
        weights="timm/vit_large_patch14_clip_224.openai", dim=1024, input_size=256,
        pooling="cls", **OPENAI_CLIP,
        description="OpenAI CLIP ViT-L/14 (Radford et al., 2021), pre-projection class token at 256 px.",
    ),
    EncoderSpec(
        name="dinov3_vitl16", source="timm", checkpoint="vit_large_patch16_dinov3.lvd1689m",
        weights="timm/vit_large_patch16_dinov3.lvd1689m", dim=1024, input_size=224,
        pooling="cls", **IMAGENET, description="DINOv3-L (Simeoni et al., 2026).",
    ),
    EncoderSpec(
        name="pe_core_l", source="timm", checkpoint="vit_pe_core_large_patch14_336.fb",
        weights="timm/vit_pe_core_large_patch14_336.fb", dim=1024, input_size=224,
        pooling="attn", **HALF, description="Perception Encoder Core-L (Bolya et al., 2025) at 224 px.",
    ),
    EncoderSpec(
        name="siglip2_so400m", source="timm", checkpoint="vit_so400m_patch16_siglip_256.v2_webli",
        weights="timm/vit_so400m_patch16_siglip_256.v2_webli", dim=1152, input_size=224,
        pooling="attn", **HALF, description="SigLIP2 So400m/16 (Tschannen et al., 2025) at 224 px.",
    ),
    EncoderSpec(
        name="aimv2_h", source="timm", checkpoint="aimv2_huge_patch14_224.apple_pt",
        weights="timm/aimv2_huge_patch14_224.apple_pt", dim=1536, input_size=224,
        pooling="avg", **OPENAI_CLIP, description="AIMv2-H (Fini et al., 2025).",
    ),
    EncoderSpec(
        name="webssl_dino1b", source="transformers", checkpoint="facebook/webssl-dino1b-full2b-224",
        weights="facebook/webssl-dino1b-full2b-224", dim=1536, input_size=224, pooling="cls",
        **IMAGENET,
        # Architecture for pretrained=False (the released config.json wins when weights exist).
        options={"model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40,
                 "num_attention_heads": 24, "mlp_ratio": 4, "patch_size": 14, "image_size": 224},
        description="Web-SSL DINO ViT-1B (Fan et al., 2025); Table 5 lists it as "
        "webssl-dino1b-full12b-224: point weights= at whichever release you use.",
    ),
    EncoderSpec(
        name="dreamsim", source="dreamsim", checkpoint="dreamsim_ensemble",
        weights="dreamsim", dim=1792, input_size=224, pooling="cls", **IDENTITY,
        description="DreamSim (Fu et al., 2023): DINO + CLIP + OpenCLIP ViT-B/16 ensemble, "
        "concatenated class tokens; takes [0, 1] inputs and normalises per member itself.",
    ),
)

HELDOUT4 = (
    EncoderSpec(
        name="dinov2_vitl14", source="timm", checkpoint="vit_large_patch14_dinov2.lvd142m",
        weights="timm/vit_large_patch14_dinov2.lvd142m", dim=1024, input_size=256,
        pooling="cls", held_out=True, **IMAGENET, description="DINOv2 ViT-L/14 (Oquab et al., 2024) at 256 px.",
    ),
    EncoderSpec(
        name="siglip_so400m", source="timm", checkpoint="vit_so400m_patch14_siglip_384.webli",
        weights="timm/vit_so400m_patch14_siglip_384.webli", dim=1152, input_size=384,
        pooling="attn", held_out=True, **HALF, description="SigLIP So400m/14 (Zhai et al., 2023).",
    ),
    EncoderSpec(
        name="cradiov3_l", source="radio", checkpoint="nvidia/C-RADIOv3-L",
        weights="nvidia/C-RADIOv3-L", dim=3072, input_size=256, pooling="summary",
        held_out=True, **IDENTITY,
        description="C-RADIOv3-L (Ranzinger et al., 2024; Heinrich et al., 2025) summary token; "
        "takes [0, 1] inputs and normalises itself.",
    ),
    EncoderSpec(
        name="flux_vae", source="flux_vae", checkpoint="black-forest-labs/FLUX.1-dev:vae",
        weights="black-forest-labs/FLUX.1-dev", dim=1024, input_size=256, pooling="patch-mean",
        held_out=True, **HALF,
        description="FLUX.1 VAE (Black Forest Labs, 2024): 16x32x32 latent mean, averaged over "
        "4x4 patches -> 16x8x8 = 1024.",
    ),
)

for _spec in TRAIN10 + HELDOUT4:
    register_encoder(_spec)

register_panel("paper_train10", [s.name for s in TRAIN10])
register_panel("paper_heldout4", [s.name for s in HELDOUT4])
register_panel("paper14", [s.name for s in TRAIN10 + HELDOUT4])
