"""FiftyOne operators, panel and J&F evaluation for SAM 2."""
