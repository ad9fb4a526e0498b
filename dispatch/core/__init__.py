"""Pure domain core shared by the server and the board: no I/O, no textual, no websockets."""
