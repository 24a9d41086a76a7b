"""Everything that runs a model (layer 3): loading, datasets, extraction, OOD, attacks, compression."""

import logging

# torchao (weight-only quantisation) is imported by transformers whenever a model class
# loads; on a CPU-only machine it logs that its CUDA kernels are absent, and torch that an
# Enum of torchao's is registered twice: four lines of noise on every command, not problems.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
