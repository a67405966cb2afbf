"""The campaign engine: trials assembled from the layers (``assemble``), run and judged (``trial``),
scheduled with launch-order sequential looks (``scheduler``) on worker threads or one virtual-time loop
(``workers``), and the pytest-free entry points ``run_campaign`` and ``replay_trial`` (``campaign``)."""
