"""What a user would run instead of Fathom: the transformers ``depth-estimation`` pipeline on PyTorch.

The network is the stand-ins' own architecture (Depth Anything V2 Small, random init after
``torch.manual_seed(0)``, the configuration in ../shared/models/README.md), so the two sides of the
comparison cost the same arithmetic. Needs requirements/bench.txt (torch), which `make bench`
installs; `make test` never imports this.
"""

import numpy as np


def depth_anything_small(seed=0):
    """DepthAnythingForDepthEstimation with the stand-ins' configuration, random weights."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=518,
        patch_size=14,
        hidden_size=384,
        num_attention_heads=6,
        num_hidden_layers=12,
        mlp_ratio=4,
        out_indices=[3, 6, 9, 12],
        out_features=["stage3", "stage6", "stage9", "stage12"],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=64,
        neck_hidden_sizes=[48, 96, 192, 384],
        reassemble_factors=[4, 2, 1, 0.5],
        head_hidden_size=32,
        depth_estimation_type="relative",
    )
    torch.manual_seed(seed)
    return DepthAnythingForDepthEstimation(config).eval()


def depth_pipeline(threads):
    """The pipeline as a user would set it up: Depth Anything's own image processor settings."""
    import torch
    from transformers import DPTImageProcessor, pipeline

    torch.set_num_threads(threads)
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    )
    model = depth_anything_small()
    # DINOv2 runs on torch's fused scaled-dot-product attention (the head has no attention to choose).
    model.backbone.set_attn_implementation("sdpa")
    return pipeline("depth-estimation", model=model, image_processor=processor, device="cpu")


def run(pipe, rgb):
    """One end-to-end estimate: picture in, depth map at the picture's size out (as numpy)."""
    import torch
    from PIL import Image

    with torch.inference_mode():
        out = pipe(Image.fromarray(rgb))
    return np.asarray(out["predicted_depth"], np.float32)
