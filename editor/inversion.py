"""Regularised DDIM inversion (pix2pix-zero): at each inversion step the predicted noise is
pulled towards i.i.d. standard normal noise before the step is taken."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Regularisation:
    """rounds x (auto-correlation steps, then one KL step), each scaled by its lambda."""

    rounds: int = 5
    auto_corr_steps: int = 5
    lambda_auto_corr: float = 20.0
    lambda_kl: float = 20.0

    def as_dict(self) -> dict:
        """JSON-ready form (part of the inversion cache key)."""
        return asdict(self)


NO_REGULARISATION = Regularisation(rounds=0)


def auto_corr_shift(size: int, generator) -> int:
    """A random roll in [1, size/2) for a side of `size` (1 when that range is empty; 0 only
    for a side of 1, where every roll is the identity)."""
    import torch

    if size <= 1:
        return 0
    return int(torch.randint(1, max(size // 2, 2), (1,), generator=generator))


def auto_corr_loss(noise, generator):
    """Sum over items and channels of the squared mean of noise x noise rolled by a random shift
    in [1, H/2) along each spatial axis, on a pyramid of the noise (avg-pooled by 2 down to 8x8).
    Shifts come from a seeded CPU generator, so they are reproducible and never 0."""
    import torch
    import torch.nn.functional as F

    loss = noise.new_zeros(())
    while True:
        for axis in (2, 3):
            shift = auto_corr_shift(noise.shape[axis], generator)
            loss = loss + ((noise * torch.roll(noise, shifts=shift, dims=axis)).mean((2, 3)) ** 2).sum()
        if noise.shape[2] <= 8 or noise.shape[3] <= 8:
            return loss
        noise = F.avg_pool2d(noise, kernel_size=2)


def kl_loss(noise):
    """Sum over items of var + mean^2 - 1 - log(var) (KL to a standard normal, up to factors)."""
    flat = noise.flatten(1)
    mean, var = flat.mean(1), flat.var(1)
    return (var + mean**2 - 1 - (var + 1e-7).log()).sum()


def regularise(epsilon, settings: Regularisation, generator):
    """The noise prediction after the regularisation rounds (computed in float32)."""
    import torch

    epsilon = epsilon.detach().float()
    with torch.enable_grad():
        for _ in range(settings.rounds):
            for _ in range(settings.auto_corr_steps):
                variable = epsilon.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(auto_corr_loss(variable, generator), variable)
                epsilon = epsilon - settings.lambda_auto_corr * grad / settings.auto_corr_steps
            variable = epsilon.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(kl_loss(variable), variable)
            epsilon = epsilon - settings.lambda_kl * grad
    return epsilon


def _sample_alpha(scheduler, timestep: int) -> float:
    """alpha-bar of the sample the inverse scheduler steps from at `timestep`."""
    before = timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return float(scheduler.alphas_cumprod[before]) if before >= 0 else float(scheduler.initial_alpha_cumprod)


def invert(components, latents, prompt, steps: int = 50,
           regularisation: Regularisation = Regularisation(), seed: int = 0,
           progress_bar=lambda steps, **_: steps):
    """DDIM-invert scaled latents [n, 4, h, w] conditioned on `prompt` (a pipeline.Conditioning
    of one row per latent, or one row for all; no guidance),
    regularising the predicted epsilon at every step; returns the noise latents x_T (float32).
    `progress_bar` wraps the step iterable (e.g. tqdm)."""
    import torch

    scheduler = components.inverse_scheduler
    scheduler.set_timesteps(steps, device=components.device)
    prediction = scheduler.config.prediction_type
    generator = torch.Generator().manual_seed(seed)
    # the latents and the scheduler's arithmetic stay in float32 while the UNet runs in its dtype
    latents = latents.to(components.device, torch.float32)
    conditioning = prompt.to(components.device, components.dtype)
    if len(conditioning) != len(latents):
        conditioning = conditioning.expand(len(latents))
    factor = components.latent_factor
    inputs = conditioning.unet_inputs(latents.shape[2] * factor, latents.shape[3] * factor)
    with torch.inference_mode():
        ticks = scheduler.timesteps.tolist()  # plain ints for the scheduler: no host sync inside the loop
        for step, t in enumerate(progress_bar(scheduler.timesteps, desc="inverting", unit="step")):
            output = components.unet(latents.to(components.dtype), t, **inputs).sample
            if regularisation.rounds:
                with torch.inference_mode(False):
                    alpha = _sample_alpha(scheduler, ticks[step])
                    sample = latents.clone().float()
                    model_output = output.clone().float()
                    if prediction == "v_prediction":  # regularise epsilon, not the raw velocity
                        epsilon = alpha**0.5 * model_output + (1 - alpha) ** 0.5 * sample
                        epsilon = regularise(epsilon, regularisation, generator)
                        model_output = (epsilon - (1 - alpha) ** 0.5 * sample) / alpha**0.5
                    else:
                        model_output = regularise(model_output, regularisation, generator)
                output = model_output
            latents = scheduler.step(output.float(), ticks[step], latents).prev_sample
    return latents
