"""dbank: a bank of reusable pix2pix-zero edit directions for Stable Diffusion."""
__version__ = "0.1.0"

from direction_bank.bank import Bank  # noqa: E402
from direction_bank.errors import BankError  # noqa: E402

__all__ = ["Bank", "BankError", "__version__"]
