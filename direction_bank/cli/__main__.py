"""`python -m direction_bank.cli`: the same as the `dbank` command."""
from direction_bank.cli import main

main()
