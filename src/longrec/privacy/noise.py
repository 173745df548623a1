"""Where the randomness of a DP mechanism comes from.

The guarantee assumes nobody can predict the noise, nor (for privacy amplification) who was
sampled. The model seed is recorded in meta.json, so noise drawn from it can be regenerated
and subtracted by anyone holding the artifact: no privacy at all. Private fits therefore seed
their noise and sampling from OS entropy and do not record that seed; `reproducible_noise`
(benchmarks, tests) derives it from the model seed instead.

Not covered: floating-point attacks on the Gaussian sampler (Mironov, CCS 2012; Opacus's
`secure_mode` needs torchcsprng, which has no build for current torch).
"""

from __future__ import annotations

import secrets


def noise_seed(seed: int, reproducible: bool) -> int:
    """The seed of a private fit's noise and sampling: `seed` itself when `reproducible`,
    otherwise 62 fresh bits of OS entropy."""
    return int(seed) if reproducible else secrets.randbits(62)


def noise_record(reproducible: bool) -> str:
    """The meta.json entry that says which one it was."""
    return "from the model seed (reproducible_noise: NOT private against whoever knows the seed)" \
        if reproducible else "OS entropy, not recorded"


REPRODUCIBLE_HELP = ("False (default): the DP noise and sampling are seeded from OS entropy and that seed is not "
                     "kept; True: from `seed`, so fits repeat exactly (benchmarks, tests), but anyone who knows "
                     "the seed (it is in meta.json) can regenerate the noise: never for a model you release")
