"""VIP (Ma et al., ICLR 2023, arXiv:2210.00030): a ResNet-50 trained on Ego4D with value-implicit
pre-training; a baseline of both the VC-1 and the Theia paper.

Facts from github:facebookresearch/vip @81b0520 (`vip/models/model_vip.py`, `cfgs/config_vip_ego4d.yaml`)
and eai-vc's `vip_resnet50_ego4d.yaml` (history @7f09836):
- architecture: `torchvision.models.resnet50` with `fc = Linear(2048, 1024)`, which is part of the
  encoder (`hidden_dim: 1024`); representation = the 1024-d fc output; tokens = the 7x7 x 2048
  `layer4` map (before pooling and fc);
- weights: `pytorch.s3.amazonaws.com/models/rl/vip/model.pt` (`vip.load_vip()`, Google Drive as a
  backup), layout `{'vip': DataParallel state dict}` with the ResNet and fc under `module.convnet.`;
- preprocessing: eai-vc uses `r3m_transforms` for VIP too: Resize(256) bilinear, CenterCrop(224),
  ImageNet mean/std;
- GMACs: ResNet-50's 4.089 (torchvision metadata) + 0.002 for the fc.
"""

from encoders.spec import IMAGENET_MEAN, IMAGENET_STD, EncoderSpec, Preprocess, Weights

VIP_CITATION = (
    "Ma, Sodhani, Jayaraman, Bastani, Kumar, Zhang. VIP: Towards Universal Visual Reward and Representation "
    "via Value-Implicit Pre-Training. ICLR 2023. arXiv:2210.00030"
)

VIP_RN50 = EncoderSpec(
    name="vip-rn50",
    aliases=("vip",),
    family="vip",
    builder="encoders.resnet:build_torchvision_resnet",
    builder_kwargs={"arch": "resnet50", "fc_dim": 1024},
    weights=Weights(
        filename="model.pt",
        layout="encoders.checkpoints:vip_checkpoint",
        url="https://pytorch.s3.amazonaws.com/models/rl/vip/model.pt",
        notes="backup: Google Drive id 1LuCFIV44xTZ0GLmLwk36BRsr9KjCW_yj; sha256 not pinned",
    ),
    preprocess=Preprocess(size=224, resize=256, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    embed_dim=1024,
    token_dim=2048,
    grid=(7, 7),
    vector_output="pooled",
    outputs=("pooled", "spatial"),
    backbone_type="cnn",
    tap="fc(2048->1024) on the average-pooled layer4 output; spatial = the 7x7 layer4 map",
    n_parameters=25_606_208,
    gmacs=4.09,
    license="CC-BY-NC-4.0",
    citation=VIP_CITATION,
    paper="VC-1 / CortexBench; Theia",
)
