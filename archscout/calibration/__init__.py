"""Calibrating the instrument: a panel of known mixers evaluated over seeds at each preset.

panel.py loads and validates the panel file, store.py keeps finished evaluations in SQLite,
run.py evaluates and summarises, cli.py is the `archscout calibrate` command. The statistics live
in `archscout.analyze.calibration`.
"""
