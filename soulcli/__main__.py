"""Run soul as `python -m soulcli`."""

from soulcli.launch import main

main()
