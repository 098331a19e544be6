"""R3M (Nair et al., CoRL 2022, arXiv:2203.12601): a ResNet-50 trained on Ego4D with time-contrastive,
video-language alignment and L1 objectives; a baseline of both the VC-1 and the Theia paper.

Facts from github:facebookresearch/r3m @b2334e7 and eai-vc's `r3m_resnet50_ego4d.yaml` (history
@7f09836):
- architecture: `torchvision.models.resnet50` with `fc = Identity`; representation = the 2048-d
  average-pooled vector (`R3M.forward`); tokens = the 7x7 `layer4` map (for the feature-norm entropy);
- weights: `model.pt` from Google Drive via `r3m.load_r3m("resnet50")`, mirrored by torchrl at
  `pytorch.s3.amazonaws.com/models/rl/r3m/r3m_50.pt`; layout `{'r3m': DataParallel state dict}`
  with the ResNet under `module.convnet.` plus a language head (`encoders.checkpoints:r3m_checkpoint`);
- preprocessing: eai-vc `r3m_transforms` = ToTensor, Resize(256) (torchvision default: bilinear),
  CenterCrop(224), ImageNet mean/std, fed to the bare ResNet; R3M's own module does the same
  normalisation inside, so the harness owns it and calls the bare ResNet (reference/encoders.md 1.1);
- GMACs: torchvision's ResNet50_Weights metadata (4.089 at 224).
"""

from encoders.spec import IMAGENET_MEAN, IMAGENET_STD, EncoderSpec, Preprocess, Weights

R3M_CITATION = (
    "Nair, Rajeswaran, Kumar, Finn, Gupta. R3M: A Universal Visual Representation for Robot Manipulation. "
    "CoRL 2022. arXiv:2203.12601"
)

R3M_RN50 = EncoderSpec(
    name="r3m-rn50",
    aliases=("r3m",),
    family="r3m",
    builder="encoders.resnet:build_torchvision_resnet",
    builder_kwargs={"arch": "resnet50"},
    weights=Weights(
        filename="r3m_50.pt",
        layout="encoders.checkpoints:r3m_checkpoint",
        url="https://pytorch.s3.amazonaws.com/models/rl/r3m/r3m_50.pt",
        notes="torchrl's mirror of R3M's model.pt (Google Drive id 1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA); sha256 not pinned",
    ),
    preprocess=Preprocess(size=224, resize=256, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    embed_dim=2048,
    token_dim=2048,
    grid=(7, 7),
    vector_output="pooled",
    outputs=("pooled", "spatial"),
    backbone_type="cnn",
    tap="average-pooled layer4 output (fc = Identity); spatial = the 7x7 layer4 map",
    n_parameters=23_508_032,
    gmacs=4.09,
    license="MIT",
    commercial_use=True,
    citation=R3M_CITATION,
    paper="VC-1 / CortexBench; Theia",
)
