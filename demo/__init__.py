"""The Gridwatch demo: a Home Assistant sandbox, a broker, a simulated site and
AppDaemon with the four apps (``./run demo``)."""
