"""Mock venues of the simulated world (CEX and perp books)."""
