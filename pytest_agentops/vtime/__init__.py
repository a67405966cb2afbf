"""Virtual time: a trial's clock (``VirtualClock``), an asyncio loop whose idle waits cost no wall time
(``VirtualTimeLoop``), and the virtual deadline of an async trial. How code that reads the standard library's
clocks is made to see a trial's clock is ``pytest_agentops.process.time_patch``."""
