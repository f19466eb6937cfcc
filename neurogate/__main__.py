"""``python -m neurogate``: the command line."""

from neurogate.gateway.cli import main

main()
