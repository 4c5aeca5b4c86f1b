"""dbank: a bank of reusable pix2pix-zero edit directions for Stable Diffusion."""
__version__ = "0.1.0"

__all__ = ["Bank", "BankError", "__version__"]


def __getattr__(name: str):
    # Bank (and SQLAlchemy under it) loads on first use, so `dbank --version` and the commands
    # that never open a bank start without it.
    if name == "Bank":
        from direction_bank.bank import Bank

        return Bank
    if name == "BankError":
        from direction_bank.errors import BankError

        return BankError
    raise AttributeError(f"module 'direction_bank' has no attribute {name!r}")
