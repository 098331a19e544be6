"""The state reference: the policy trained on the simulator's low-dimensional state instead of frames.

Every robot-learning paper reports this row as the upper reference visual encoders are measured against
(e.g. R3M, Nair et al. 2022, arXiv:2203.12601; VC-1's CortexBench, Majumdar et al. 2023,
arXiv:2303.18240, discusses it for its suites). It is selected like an encoder (`encoder=state`), trains the same
heads through the same history, fusion, proprioception and evaluation, and never renders: see
`encoders/state.py` for what "state" is on each suite.
"""

from encoders.spec import EncoderSpec, Preprocess

STATE = EncoderSpec(
    name="state",
    family="state",
    builder="encoders.state:StateReference",
    input="state",
    preprocess=Preprocess(),  # unused: no frames
    embed_dim=0,  # the task's state size (`StateReference.for_task`)
    token_dim=0,
    grid=(1, 1),
    vector_output="cls",
    outputs=("cls",),
    n_parameters=0,
    gmacs=0.0,
    license="n/a (no weights)",
    commercial_use=True,
    citation="the simulator's low-dimensional state (no visual encoder)",
    paper="reference row",
    backbone_type="cnn",  # Theia's rule gives vector heads (bc-mlp, trifinger-mlp): the state is one vector
    tap="the task's state observation, as float32",
    notes="upper reference; its records say which state each suite gives (record encoder.state)",
)
