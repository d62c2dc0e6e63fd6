"""Energy arithmetic: tally periods, recorder statistics request/parse, the month cache."""
