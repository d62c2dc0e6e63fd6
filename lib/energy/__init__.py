"""Energy arithmetic: tally periods, recorder statistics request/parse, headroom."""
