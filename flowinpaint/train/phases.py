"""Training phases: which player learns at a given step (GLCIC's three-phase schedule)."""

import enum


class Phase(enum.Enum):
  RECONSTRUCTION = "reconstruction"  # Generator only, reconstruction loss only.
  DISCRIMINATOR = "discriminator"  # Discriminator only; the generator is frozen.
  JOINT = "joint"  # Discriminator step, then generator step with the adversarial term.

  @property
  def trains_generator(self) -> bool:
    return self is not Phase.DISCRIMINATOR

  @property
  def trains_discriminator(self) -> bool:
    return self is not Phase.RECONSTRUCTION


def phase_for_step(step: int, *, reconstruction_steps: int, discriminator_steps: int,
                   has_discriminator: bool = True) -> Phase:
  """The phase of global step `step` (0-based). Without a discriminator every step reconstructs."""
  if not has_discriminator or step < reconstruction_steps:
    return Phase.RECONSTRUCTION
  if step < reconstruction_steps + discriminator_steps:
    return Phase.DISCRIMINATOR
  return Phase.JOINT
