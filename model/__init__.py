"""SAM 2 / 2.1 network and video predictor (torch only)."""
