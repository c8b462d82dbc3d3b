"""Run soul as `python -m soulcli`."""

from soulcli.cli import main

main()
