"""Training losses: spectral reconstruction (stft_loss) and adversarial (adversarial)."""

from jenbridge.losses.adversarial import (
    MultiScaleSTFTDiscriminator,
    STFTDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from jenbridge.losses.stft_loss import (
    MelSpectrogramLoss,
    MultiResolutionSTFTLoss,
    mel_filterbank,
)

__all__ = [
    "MelSpectrogramLoss",
    "MultiResolutionSTFTLoss",
    "MultiScaleSTFTDiscriminator",
    "STFTDiscriminator",
    "discriminator_hinge_loss",
    "feature_matching_loss",
    "generator_hinge_loss",
    "mel_filterbank",
]
