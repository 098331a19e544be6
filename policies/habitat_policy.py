"""CortexBench's Habitat policy (the VC-1 paper's ImageNav / ObjectNav / MobilePick agents) on a frozen
encoder from this harness's registry. Plain torch: it runs (and is tested) without habitat installed;
`experiments/cells/habitat.py` plugs it into habitat-baselines' trainers.

Facts from the reference code (read, not copied), eai-vc @ e782c35:
`cortexbench/habitat_vc/habitat_vc/{visual_encoder.py, rl/policy.py (EAINet), il/objectnav/visual_policy.py
(ObjectNavILNet)}`, `cortexbench/habitat2_vc/habitat2_vc/{visual_encoder.py, policy.py (EAINet)}`,
`vc_models/src/vc_models/{models/compression_layer.py, transforms/__init__.py (transform_augment),
transforms/random_shifts_aug.py}`; habitat-lab v0.2.1 `habitat_baselines/rl/{ddppo/policy/running_mean_and_var.py,
models/rnn_state_encoder.py, ppo/policy.py}` and `habitat_baselines/utils/common.py` (CategoricalNet, GaussianNet;
for MobilePick the mathfac/habitat-lab fork's GaussianNet, commit 8a22bcc).

    rgb uint8 [N,H,W,3]
      -> [0,1], Resize(shorter side = image_size) + CenterCrop(image_size)        (transform_augment)
      -> ColorJitter + RandomShift(pad) when augmenting (train; also test for ImageNav / MobilePick)
      -> per-channel running mean / variance normalisation (habitat-baselines RunningMeanAndVar: VC-1's
         Habitat transforms carry no ImageNet Normalize, so this is the only input normalisation)
      -> FROZEN encoder at image_size (ViT: patch tokens, CLS dropped, as a [C, h, w] grid: 8x8 at 128 px,
         16x16 at 256 px; CNN: last feature map) -- eval mode, torch.inference_mode, no gradient
      -> compression layer: Conv3x3(C -> round(2048 / (h*w)), no bias) -> GroupNorm(1) -> ReLU -> flatten (~2048)
      -> Linear(., hidden) + ReLU                                                  (visual_fc)
    + ImageNav: the goal image through the same frozen backbone, its own normalisation + compression + fc
    + ObjectNav: object category Embedding(n, 32), GPS Linear(2, 32), compass Linear([cos, sin], 32)
    + MobilePick: every 1-d state sensor concatenated raw, in sorted key order
    + previous action: Embedding(n_actions + 1, 32) with 0 at episode starts (discrete), or Linear(n, 32) on
      mask * previous action (continuous, MobilePick)
    -> RNN state encoder (LSTM / GRU, L layers; hidden state zeroed where mask == 0)
    -> actor: categorical (orthogonal init, gain 0.01) or Gaussian (tanh mean, state-independent log-std
       parameter clamped to [-5, 2]); critic Linear(hidden, 1) (RL only; the ObjectNav IL policy has none)

Choices of ours, stated: the backbone is always frozen (the paper's frozen-PVR setting; eai-vc's shipped
ImageNav config has `freeze_backbone: False`, i.e. fine-tuning at 1.5e-6); `input_norm="encoder"` swaps
the running statistics for the encoder's own mean/std (not what CortexBench ran); MobilePick's Gaussian
starts at log-std 0 because that fork's GaussianNet reads `log_std_init` (default 0.0), not the
`std_init: -1.0` that eai-vc's `rl_skill.yaml` sets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2 as T

COMPRESSED_SIZE = 2048  # vc_models create_compression_layer(after_compression_flat_size=2048)
EMBED = 32  # size of every small embedding (previous action, object category, GPS, compass)


@dataclass(frozen=True)
class HabitatPolicyConfig:
    """One task's policy, as CortexBench configures it (values in `HABITAT_POLICIES` below)."""

    image_size: int  # input_image_size / RGB_ENCODER.image_size
    hidden_size: int  # visual fc; also the RNN's unless rnn_hidden_size is set
    rnn_type: Literal["LSTM", "GRU"]
    rnn_layers: int
    action: Literal["discrete", "continuous"]
    n_actions: int
    goal_image: bool = False  # ImageNav: `imagegoal_sensor_v2` through the frozen backbone
    object_goal: int = 0  # ObjectNav: number of object categories (0: none)
    gps_compass: bool = False  # ObjectNav: GPS (2) and compass (1) embeddings
    state_sensors: tuple[tuple[str, int], ...] = ()  # MobilePick: (1-d sensor, size), fused raw in this (sorted) order
    rnn_hidden_size: int | None = None  # ObjectNav: 2048 (STATE_ENCODER.hidden_size)
    critic: bool = True  # RL policies have a value head; the IL policy does not
    augment_train: bool = False
    augment_test: bool = False
    jitter: float = 0.3  # ColorJitter brightness = contrast = saturation = hue
    shift_pad: int = 4
    log_std_init: float = 0.0  # Gaussian policies
    rgb_key: str = "rgb"
    goal_key: str = "imagegoal"

    @property
    def state_size(self) -> int:
        return self.rnn_hidden_size or self.hidden_size


HABITAT_POLICIES: dict[str, HabitatPolicyConfig] = {
    # configs/experiments/imagenav_rl.yaml (RL.POLICY), configs/tasks/imagenav.yaml, model/transform/jitter_and_shift.yaml
    "imagenav": HabitatPolicyConfig(
        image_size=128, hidden_size=512, rnn_type="LSTM", rnn_layers=2, action="discrete", n_actions=4,
        goal_image=True, augment_train=True, augment_test=True, jitter=0.3, shift_pad=4,
        goal_key="imagegoalrotation",
    ),
    # configs/experiments/objectnav_il.yaml (MODEL.*), configs/tasks/objectnav_hm3d_il.yaml; no augmentation
    "objectnav": HabitatPolicyConfig(
        image_size=256, hidden_size=512, rnn_type="LSTM", rnn_layers=2, action="discrete", n_actions=6,
        object_goal=6, gps_compass=True, rnn_hidden_size=2048, critic=False, jitter=0.4, shift_pad=16,
    ),
    # habitat2_vc configs/experiments/rl_skill.yaml (habitat_baselines.rl.policy), tasks/sensors/fixed_goal_sensor.yaml
    "mobilepick": HabitatPolicyConfig(
        image_size=128, hidden_size=768, rnn_type="GRU", rnn_layers=2, action="continuous", n_actions=10,
        state_sensors=(("frozen_obj_start_sensor", 3), ("is_holding", 1), ("joint", 7), ("relative_resting_position", 3)),
        augment_train=True, augment_test=True, jitter=0.3, shift_pad=4, rgb_key="robot_head_rgb",
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Visual encoder: transform, running normalisation, frozen backbone, compression layer
# --------------------------------------------------------------------------------------------------
class RunningMeanAndVar(nn.Module):
    """Per-channel running mean and variance of the input, merged batch by batch (Chan et al.'s parallel
    update); in training mode the statistics are updated (averaged over DDP workers when torch.distributed
    is initialised), then x is normalised by (x - mean) / sqrt(max(var, 1e-2)). Buffers, not parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("var", torch.zeros(1, channels, 1, 1))
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                flat = x.transpose(0, 1).reshape(x.shape[1], -1)
                batch_mean = flat.mean(dim=1)
                n = torch.tensor(float(x.shape[0]), device=x.device)
                distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
                if distributed:
                    torch.distributed.all_reduce(batch_mean)
                    torch.distributed.all_reduce(n)
                    batch_mean /= torch.distributed.get_world_size()
                batch_var = (flat - batch_mean[:, None]).pow(2).mean(dim=1)
                if distributed:
                    torch.distributed.all_reduce(batch_var)
                    batch_var /= torch.distributed.get_world_size()
                batch_mean, batch_var = batch_mean.view_as(self.mean), batch_var.view_as(self.var)
                total = self.count + n
                delta = batch_mean - self.mean
                self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
                self.mean.copy_((self.mean * self.count + batch_mean * n) / total)
                self.count.copy_(total)
        return (x - self.mean) * torch.rsqrt(torch.clamp(self.var, min=1e-2))


def compression_layer(channels: int, grid: tuple[int, int], flat: int = COMPRESSED_SIZE) -> tuple[nn.Module, int]:
    """Conv3x3 (no bias) to round(flat / (h*w)) channels, GroupNorm(1 group), ReLU, flatten; returns (module, size)."""
    out_channels = round(flat / (grid[0] * grid[1]))
    module = nn.Sequential(
        nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(1, out_channels),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )
    return module, out_channels * grid[0] * grid[1]


class FrozenBackbone(nn.Module):
    """A registry encoder's module at `image_size`, frozen: eval mode always, no parameter requires grad,
    forward under `torch.inference_mode()`. Returns the spatial tokens as a [B, C, h, w] grid.

    ViTs are rebuilt at the new size with timm's `set_input_size` (position embeddings resampled, as eai-vc
    rebuilds its ViT with `img_size=128`); CNNs take any size (grid = size / 32 for ResNets)."""

    def __init__(self, encoder, image_size: int):
        super().__init__()
        spec = encoder.spec
        module = encoder.module
        if spec.backbone_type == "transformer" and spec.preprocess.size != image_size:
            vit = getattr(module, "backbone", None)
            if not hasattr(vit, "set_input_size"):
                raise ValueError(f"{spec.name}: cannot rebuild this backbone at {image_size} px (not a timm ViT)")
            module = copy.deepcopy(module)
            module.backbone.set_input_size(img_size=(image_size, image_size))
        self.module = module.eval().requires_grad_(False)
        self.spec = spec
        self.image_size = image_size
        with torch.inference_mode():
            probe = next(self.module.parameters())
            tokens = self.module(torch.zeros(1, 3, image_size, image_size, device=probe.device, dtype=probe.dtype))
        n, channels = tokens["tokens"].shape[1:]
        side = round(n**0.5)
        if side * side != n:
            raise ValueError(f"{spec.name}: {n} tokens at {image_size} px do not form a square grid")
        self.grid, self.channels = (side, side), channels

    def train(self, mode: bool = True) -> FrozenBackbone:
        super().train(mode)
        self.module.eval()  # frozen: BatchNorm / dropout never switch to training behaviour
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            tokens = self.module(x)["tokens"]  # [B, N, C]
            grid = tokens.transpose(1, 2).reshape(len(x), self.channels, *self.grid)
        return grid.clone()  # an ordinary tensor (not an inference tensor) for the trainable layers after it


class RandomShift(nn.Module):
    """Replicate-pad by `pad` and crop back at a random offset per image (DrQ's shift, as vc_models)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="replicate")
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), device=x.device)
        return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


class HabitatVisualEncoder(nn.Module):
    """uint8 [N,H,W,3] -> [N, ~2048]: resize/crop, (augment), normalise, frozen backbone, compression."""

    def __init__(self, backbone: FrozenBackbone, cfg: HabitatPolicyConfig, input_norm: str = "running"):
        super().__init__()
        self.backbone = backbone  # shared between the RGB and goal encoders, as eai-vc does when frozen
        size = cfg.image_size
        self.resize = T.Compose([T.Resize(size, antialias=True), T.CenterCrop(size)])
        jitter = T.ColorJitter(cfg.jitter, cfg.jitter, cfg.jitter, cfg.jitter)
        self.augment = nn.Sequential(jitter, RandomShift(cfg.shift_pad))
        self.augment_train, self.augment_test = cfg.augment_train, cfg.augment_test
        if input_norm == "running":
            self.normalize: nn.Module = RunningMeanAndVar(3)
        elif input_norm == "encoder":
            pre = backbone.spec.preprocess
            self.normalize = T.Normalize(list(pre.mean), list(pre.std))
        else:
            raise ValueError(f"input_norm must be 'running' or 'encoder', got {input_norm!r}")
        self.compression, self.output_size = compression_layer(backbone.channels, backbone.grid)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float() / 255.0
        x = self.resize(x)
        if self.augment_train if self.training else self.augment_test:
            x = self.augment(x)
        x = self.normalize(x)
        return self.compression(self.backbone(x))


# --------------------------------------------------------------------------------------------------
# Recurrent state encoder and heads
# --------------------------------------------------------------------------------------------------
class RNNStateEncoder(nn.Module):
    """LSTM / GRU over steps, with the hidden state zeroed where `masks == 0` (episode starts).

    Hidden states are stored as [N, layers (x2 for LSTM: h then c), hidden], habitat-baselines' layout,
    so the policy plugs into its rollout storage. Input: one step [N, D], or a rollout [T*N, D] (time-major)."""

    def __init__(self, input_size: int, hidden_size: int, rnn_type: str, layers: int):
        super().__init__()
        self.rnn_type = rnn_type.upper()
        if self.rnn_type not in ("LSTM", "GRU"):
            raise ValueError(f"rnn_type must be LSTM or GRU, got {rnn_type!r}")
        self.rnn = (nn.LSTM if self.rnn_type == "LSTM" else nn.GRU)(input_size, hidden_size, num_layers=layers)
        self.num_recurrent_layers = layers * (2 if self.rnn_type == "LSTM" else 1)
        for name, param in self.rnn.named_parameters():  # habitat-baselines' layer_init
            if "weight" in name:
                nn.init.orthogonal_(param)
            else:
                nn.init.zeros_(param)

    def _unpack(self, hidden: torch.Tensor):
        hidden = hidden.transpose(0, 1).contiguous()  # [layers(*2), N, H]
        return tuple(hidden.chunk(2, dim=0)) if self.rnn_type == "LSTM" else hidden

    def _pack(self, hidden) -> torch.Tensor:
        return (torch.cat(hidden, dim=0) if self.rnn_type == "LSTM" else hidden).transpose(0, 1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = hidden.shape[0]
        steps = x.shape[0] // n
        x, masks = x.view(steps, n, -1), masks.view(steps, n, 1).to(x.dtype)
        outputs = []
        for t in range(steps):  # a step at a time, resetting where an episode starts
            hidden = hidden * masks[t].unsqueeze(1)
            out, state = self.rnn(x[t : t + 1], self._unpack(hidden))
            hidden = self._pack(state)
            outputs.append(out[0])
        return torch.cat(outputs, dim=0), hidden


class CategoricalHead(nn.Module):
    def __init__(self, size: int, n: int):
        super().__init__()
        self.linear = nn.Linear(size, n)
        nn.init.orthogonal_(self.linear.weight, gain=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=self.linear(x).float())


class GaussianHead(nn.Module):
    """tanh mean from a linear layer (orthogonal, gain 0.01); log-std a parameter clamped to [-5, 2]."""

    def __init__(self, size: int, n: int, log_std_init: float = 0.0):
        super().__init__()
        self.mean = nn.Linear(size, n)
        nn.init.orthogonal_(self.mean.weight, gain=0.01)
        nn.init.zeros_(self.mean.bias)
        self.log_std = nn.Parameter(torch.randn(n) * 0.01 + log_std_init)

    def forward(self, x: torch.Tensor) -> torch.distributions.Distribution:
        mean = torch.tanh(self.mean(x).float())
        std = torch.exp(torch.clamp(self.log_std, -5.0, 2.0)).expand_as(mean)
        return torch.distributions.Independent(torch.distributions.Normal(mean, std), 1)


# --------------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------------
class HabitatInputs(nn.Module):
    """Everything before the recurrent state encoder: frozen visual encoder(s) + compression + fc, goal and
    state embeddings, previous-action embedding -> one vector per step ([B, output_size]).

    The habitat-baselines adapters (`experiments/cells/habitat.py`) put this in front of habitat-baselines'
    own RNN state encoder and heads; `HabitatPolicy` puts it in front of ours."""

    def __init__(self, encoder, cfg: HabitatPolicyConfig, input_norm: str = "running"):
        super().__init__()
        self.cfg = cfg
        backbone = FrozenBackbone(encoder, cfg.image_size)
        self.visual_encoder = HabitatVisualEncoder(backbone, cfg, input_norm)
        self.visual_fc = nn.Sequential(nn.Linear(self.visual_encoder.output_size, cfg.hidden_size), nn.ReLU(True))
        size = cfg.hidden_size
        if cfg.goal_image:
            self.goal_visual_encoder = HabitatVisualEncoder(backbone, cfg, input_norm)
            self.goal_visual_fc = nn.Sequential(
                nn.Linear(self.visual_encoder.output_size, cfg.hidden_size), nn.ReLU(True)
            )
            size += cfg.hidden_size
        if cfg.object_goal:
            self.obj_categories_embedding = nn.Embedding(cfg.object_goal, EMBED)
            size += EMBED
        if cfg.gps_compass:
            self.gps_embedding = nn.Linear(2, EMBED)
            self.compass_embedding = nn.Linear(2, EMBED)
            size += 2 * EMBED
        size += sum(dim for _, dim in cfg.state_sensors)
        if cfg.action == "discrete":
            self.prev_action_embedding: nn.Module = nn.Embedding(cfg.n_actions + 1, EMBED)
        else:
            self.prev_action_embedding = nn.Linear(cfg.n_actions, EMBED)
        self.output_size = size + EMBED

    @property
    def backbone(self) -> FrozenBackbone:
        return self.visual_encoder.backbone

    def forward(self, observations: dict, prev_actions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = [self.visual_fc(self.visual_encoder(observations[cfg.rgb_key]))]
        if cfg.goal_image:
            x.append(self.goal_visual_fc(self.goal_visual_encoder(observations[cfg.goal_key])))
        if cfg.object_goal:
            x.append(self.obj_categories_embedding(observations["objectgoal"].long().view(-1)))
        if cfg.gps_compass:
            x.append(self.gps_embedding(observations["gps"].float()))
            compass = observations["compass"].float().view(-1, 1)
            x.append(self.compass_embedding(torch.cat([torch.cos(compass), torch.sin(compass)], dim=1)))
        if cfg.state_sensors:
            x.append(torch.cat([observations[k].float().flatten(1) for k, _ in cfg.state_sensors], dim=1))
        masks = masks.view(-1, 1)
        if cfg.action == "discrete":
            previous = torch.where(masks.view(-1), prev_actions.long().view(-1) + 1, 0)  # 0: episode start
            x.append(self.prev_action_embedding(previous))
        else:
            x.append(self.prev_action_embedding(masks.float() * prev_actions.float()))
        return torch.cat(x, dim=1)


class HabitatPolicy(nn.Module):
    """Frozen encoder + compression layer + embeddings + RNN + actor (+ critic), for one Habitat task.

    `act` / `get_value` / `evaluate_actions` follow habitat-baselines' `Policy` interface (v0.2.1): observations
    are a dict of batched tensors, `hidden` is [N, num_recurrent_layers, state_size], `prev_actions` is [N, 1]
    (discrete, int) or [N, n_actions] (continuous), `masks` is [N, 1] bool (False at an episode's first step).
    """

    def __init__(self, encoder, cfg: HabitatPolicyConfig, input_norm: str = "running"):
        super().__init__()
        self.cfg = cfg
        self.inputs = HabitatInputs(encoder, cfg, input_norm)
        self.state_encoder = RNNStateEncoder(self.inputs.output_size, cfg.state_size, cfg.rnn_type, cfg.rnn_layers)
        if cfg.action == "discrete":
            self.action_distribution: nn.Module = CategoricalHead(cfg.state_size, cfg.n_actions)
        else:
            self.action_distribution = GaussianHead(cfg.state_size, cfg.n_actions, cfg.log_std_init)
        self.critic = nn.Linear(cfg.state_size, 1) if cfg.critic else None
        if self.critic is not None:
            nn.init.orthogonal_(self.critic.weight)
            nn.init.zeros_(self.critic.bias)

    @property
    def num_recurrent_layers(self) -> int:
        return self.state_encoder.num_recurrent_layers

    @property
    def backbone(self) -> FrozenBackbone:
        return self.inputs.backbone

    def initial_state(self, n: int, device=None) -> torch.Tensor:
        return torch.zeros(n, self.num_recurrent_layers, self.cfg.state_size, device=device)

    def features(self, observations: dict, hidden: torch.Tensor, prev_actions: torch.Tensor, masks: torch.Tensor):
        """-> (RNN output [B, state_size], new hidden state)."""
        return self.state_encoder(self.inputs(observations, prev_actions, masks), hidden, masks)

    def forward(self, observations, hidden, prev_actions, masks):
        features, hidden = self.features(observations, hidden, prev_actions, masks)
        return self.action_distribution(features), hidden, features

    def act(self, observations, hidden, prev_actions, masks, deterministic: bool = False):
        """-> (value or None, action, log-prob, new hidden state); deterministic: the mode / the mean."""
        distribution, hidden, features = self(observations, hidden, prev_actions, masks)
        if deterministic:
            action = distribution.probs.argmax(-1) if self.cfg.action == "discrete" else distribution.mean
        else:
            action = distribution.sample()
        value = self.critic(features) if self.critic is not None else None
        action_out = action.unsqueeze(-1) if self.cfg.action == "discrete" else action
        return value, action_out, distribution.log_prob(action).unsqueeze(-1), hidden

    def get_value(self, observations, hidden, prev_actions, masks) -> torch.Tensor:
        if self.critic is None:
            raise RuntimeError("this policy has no critic (imitation learning)")
        features, _ = self.features(observations, hidden, prev_actions, masks)
        return self.critic(features)

    def evaluate_actions(self, observations, hidden, prev_actions, masks, action):
        """-> (value or None, log-prob [B,1], entropy [B,1], new hidden state) of `action` (PPO / BC losses)."""
        distribution, hidden, features = self(observations, hidden, prev_actions, masks)
        action = action.view(-1).long() if self.cfg.action == "discrete" else action
        value = self.critic(features) if self.critic is not None else None
        return value, distribution.log_prob(action).unsqueeze(-1), distribution.entropy().unsqueeze(-1), hidden


def policy_config(suite: str, **overrides) -> HabitatPolicyConfig:
    """CortexBench's policy config for `suite` (imagenav | objectnav | mobilepick), fields optionally replaced."""
    if suite not in HABITAT_POLICIES:
        raise ValueError(f"no Habitat policy for suite {suite!r}; choose one of {sorted(HABITAT_POLICIES)}")
    from dataclasses import replace

    return replace(HABITAT_POLICIES[suite], **overrides)


def build_habitat_policy(encoder, suite: str, input_norm: str = "running", **overrides) -> HabitatPolicy:
    """The CortexBench policy of `suite` (imagenav | objectnav | mobilepick) on a frozen registry encoder."""
    return HabitatPolicy(encoder, policy_config(suite, **overrides), input_norm)
