"""The dispatch server: websockets protocol, command handling, storage. Never imports the board."""
