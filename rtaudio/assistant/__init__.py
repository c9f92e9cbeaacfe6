"""Voice assistant loop: listen, decide the end of the turn, respond, speak, yield to barge-in."""
