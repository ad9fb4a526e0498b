"""Dispatch board for break-fix IT service providers: the board, the wire client, the CLI."""
