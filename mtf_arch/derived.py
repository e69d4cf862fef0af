"""Size bindings derived from the shared size macros, for gin arch files.

An architecture that must change a size to match the paper's parameter
counts (e.g. GeGLU's two-thirds d_ff, two vanilla layers per Evolved
Transformer block) says so in its own gin file:

  DenseReluDense.hidden_size = @mtf_arch.derived.scaled()
  scaled.value = %d_ff
  scaled.factor = 0.6666666666666666
  scaled.multiple_of = 8

so gin/size/ stays shared by every architecture.
"""

import gin

from mtf_arch.errors import ConfigError


@gin.configurable
def scaled(value=gin.REQUIRED, factor=gin.REQUIRED, multiple_of=1):
  """`value * factor`, rounded to the nearest positive multiple of `multiple_of`.

  Args:
    value: a size macro (e.g. %d_ff or %num_layers).
    factor: a positive float.
    multiple_of: round to a multiple of this (e.g. 8, so that the result
      still splits over a model:8 mesh).

  Returns:
    an int.

  Raises:
    ConfigError: if the result would be zero.
  """
  out = int(round(value * factor / multiple_of)) * multiple_of
  if out < 1:
    raise ConfigError("scaled: %r * %r rounds to %d; use a larger size" %
                      (value, factor, out))
  return out
