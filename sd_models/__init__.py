"""What a Stable Diffusion checkpoint is and how its text encoders are read, shared by the bank
(`direction_bank`) and the editor (`editor`) so the two can never disagree: the model family
(SDXL or not), the dtype names, prompt encoding, and the bounds of the edit settings. Imports neither of them; torch and
transformers are imported inside the functions that need them."""
