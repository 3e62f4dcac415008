"""The numbers every judgement of the check uses: sampling sizes, error bounds, steps, noise levels."""

# Default mode. Up to MAX_EXHAUSTIVE entries a parameter is probed entry by entry: at most about
# 4,000 loss calls, well under a second for networks this size, and an exact map of the wrong
# entries where mistakes often touch only some (a bias, an output layer). Above it, 2 calls per
# entry buy nothing for the verdict: a Gaussian direction moves every entry at once, so
# SAMPLE_DIRECTIONS of them (plus SAMPLE_ENTRIES stratified entries for the magnitudes) decide
# in 2 * (8 + 16) = 48 calls; only a parameter they find wrong is searched for its wrong entries.
MAX_EXHAUSTIVE = 2_048
SAMPLE_ENTRIES = 16
SAMPLE_DIRECTIONS = 8
CALLS_PER_PROBE = {"central": 2, "richardson": 4, "complex": 1}  # loss calls per entry or direction probed
SEARCH_ENTRIES = 4_096  # candidate entries of a search probed one by one up to this many ...
SEARCH_SAMPLE = 256  # ... else a sample of this many
BORDERLINE = 3.0  # error within this factor of what is allowed: re-measure with a better method
SIGMAS = 3.0  # an entry disagrees beyond this many error bounds ...
CONFIRM_SIGMAS = 5.0  # ... and is believed wrong when a better measurement agrees beyond this many
WIDE = 10.0  # the confirming measurement's step, in units of the probe step
SHRINK_STEPS = (8.0, 8.0)  # a disagreeing probe is measured again with 8 and 64 times smaller steps
NOISE_SAFETY = 2.0  # the measured noise level is an estimate: bounds use this multiple of it
REL_FLOOR = 1e-12
UNRESOLVED = 0.3  # a gradient whose error bound exceeds this share of its norm cannot be resolved
RESOLUTION_MAX = 0.05  # ok means "agrees to within this much of the gradient" at worst; coarser is inconclusive
STEP_RATES = (1e-4, 1e-2)  # learning rates at which a step: gradient is read
FLOAT64_NOISE = 1e-12  # relative noise up to which the loss is taken as computed in float64
FLOAT32_NOISE = 3e-6  # ... and in float32; noisier losses are "noisy"
RANDOM_MARGIN = 10.0  # a loss that differs between calls: wrong only beyond this many times what is allowed
