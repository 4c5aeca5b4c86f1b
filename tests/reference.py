"""Direct computations the bank's results are checked against (pix2pix-zero's own way)."""
import numpy as np


def reference_embeddings(model_dir, sentences) -> np.ndarray:
    """Each sentence through CLIPTokenizer + CLIPTextModel one at a time, padded to 77, as
    pix2pix-zero's make_edit_direction.py does: float64 [n, 77, D]."""
    import torch
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
    model = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder").eval()
    out = []
    with torch.no_grad():
        for text in sentences:
            ids = tokenizer(
                text, padding="max_length", max_length=tokenizer.model_max_length,
                truncation=True, return_tensors="pt",
            ).input_ids
            out.append(model(ids)[0][0].double().numpy())
    return np.stack(out)


def reference_regularised_inversion(components, latents, states, steps, regularisation, seed=0):
    """pix2pix-zero's regularised DDIM inversion written out step by step, for epsilon and
    v-prediction models alike: the model's output is turned into epsilon by hand (alpha-bar of
    the sample being stepped from: the timestep one step below t, or the initial alpha), the
    regulariser is applied to epsilon, and an epsilon-predicting inverse DDIM scheduler takes
    the step. Float32 [n, 4, h, w]."""
    import torch
    from diffusers import DDIMInverseScheduler

    from editor.inversion import regularise

    config = components.inverse_scheduler.config
    velocity = config.prediction_type == "v_prediction"
    scheduler = DDIMInverseScheduler.from_config({**config, "prediction_type": "epsilon"})
    scheduler.set_timesteps(steps)
    stride = config.num_train_timesteps // steps
    generator = torch.Generator().manual_seed(seed)
    x = latents.float().clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            output = components.unet(x, t, encoder_hidden_states=states).sample.float()
            below = int(t) - stride
            alpha = scheduler.alphas_cumprod[below] if below >= 0 else scheduler.initial_alpha_cumprod
            epsilon = alpha.sqrt() * output + (1 - alpha).sqrt() * x if velocity else output
            with torch.enable_grad():
                epsilon = regularise(epsilon, regularisation, generator)
            x = scheduler.step(epsilon, t, x).prev_sample
    return x
