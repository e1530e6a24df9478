"""One frame-causal transformer and one DINOv2 wrapper: main's checkpoints load and compute the same numbers.

``fixtures/stack_main.pt`` holds weights and outputs made by main's code (commit 48ffa1b) before the pixel
predictor and the DINO-WM predictor shared a transformer, and before the two DINOv2 wrappers became one
(``fixtures/make_stack_fixture.py``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchrl_gbp.bridges import DinoWMImageEncoder, DinoWMPredictor
from torchrl_gbp.models import DINOv2Encoder, load_checkpoint

FIXTURE = torch.load(Path(__file__).parent / "fixtures" / "stack_main.pt", weights_only=True)
ATOL = 1e-6
TINY_DINO = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "patch_size": 7, "image_size": 14}


@pytest.mark.parametrize("case", ["blur", "dinov2"])
def test_pixel_checkpoints_saved_by_main_load_strictly_and_compute_the_same(case, tmp_path):
    saved = FIXTURE["pixel"][case]
    torch.save(saved["payload"], tmp_path / "model.pt")
    model, _ = load_checkpoint(tmp_path / "model.pt")  # strict: every old key has its place
    model.eval()
    torch.testing.assert_close(model.encode(saved["pixels"], saved["proprio"]), saved["z"], atol=ATOL, rtol=0)
    frames = model.predictor.forward_frames(saved["z"], saved["e"])
    torch.testing.assert_close(frames.detach(), saved["frames"], atol=ATOL, rtol=0)
    rollout = model.rollout(saved["z"], saved["a_hist"], saved["actions"])
    torch.testing.assert_close(rollout.detach(), saved["rollout"], atol=ATOL, rtol=0)


def test_dinov2_encoder_of_main_computes_the_same_tokens():
    saved = FIXTURE["dinov2"]
    options = dict(saved["config_dict"])
    encoder = DINOv2Encoder.from_config(options.pop("config"), **options)
    encoder.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(encoder(saved["images"]), saved["tokens"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("index", [0, 1])
def test_dinowm_predictor_of_main_loads_strictly_and_computes_the_same(index):
    saved = FIXTURE["dinowm_predictor"][index]
    predictor = DinoWMPredictor(**saved["kwargs"]).eval()
    predictor.load_state_dict(saved["state_dict"])
    z, e = saved["z"], saved["e"]
    with torch.no_grad():
        torch.testing.assert_close(predictor(z, e), saved["next_full"], atol=ATOL, rtol=0)
        torch.testing.assert_close(predictor(z[:, -1:], e[:, -1:]), saved["next_one"], atol=ATOL, rtol=0)


def test_dinowm_image_encoder_of_main_loads_strictly_and_computes_the_same_tokens():
    saved = FIXTURE["dinowm_encoder"]
    encoder = DinoWMImageEncoder.from_config(saved["config"], image_size=saved["image_size"])
    encoder.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(encoder(saved["images"]), saved["tokens"], atol=ATOL, rtol=0)


def test_the_pixel_and_dinowm_predictors_share_one_frame_causal_transformer():
    from torchrl_gbp.models import FrameCausalTransformerPredictor
    from torchrl_gbp.models.predictors import FrameCausalTransformer

    pixel = FrameCausalTransformerPredictor(4, 3, proprio_dim=2, action_embed_dim=5, num_hist=3, width=16)
    dinowm = DinoWMPredictor(num_patches=4, num_hist=3, visual_dim=8, proprio_embed_dim=2, action_embed_dim=2,
                             depth=1, heads=2, dim_head=4, mlp_dim=16)
    assert type(pixel.transformer) is type(dinowm.transformer) is FrameCausalTransformer


@pytest.mark.parametrize("build", [lambda: DINOv2Encoder.from_config(TINY_DINO, input_size=28, pooled_grid=2),
                                   lambda: DinoWMImageEncoder.from_config(TINY_DINO, image_size=48)])
def test_each_configuration_of_the_one_dinov2_wrapper_rebuilds_from_its_config_dict(build):
    encoder = build()
    again = type(encoder).from_config(**encoder.config_dict())
    again.load_state_dict(encoder.state_dict())
    images = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(again(images), encoder(images))
    with pytest.raises(ValueError, match="square"):
        encoder(torch.rand(2, 3, 40, 32))
