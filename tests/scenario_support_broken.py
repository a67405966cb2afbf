"""A module that fails on import: the scenario-file error corpus names it (``scenario_support_broken:agent``)."""

raise RuntimeError("this module is broken on purpose")
