"""The workbench: what people look at — charts, the replay explorer, reports, the CLI, the lab.

The top of the house: it may use every stage below. Importing it loads
Altair and ipywidgets, so :mod:`eventkit` loads it only when a name from it
is first used.
"""
