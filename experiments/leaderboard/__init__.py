"""The leaderboard: tables and figures from the run records beside the published numbers
(`python -m experiments.leaderboard`, `nox -s leaderboard`).

- `collect`: find, read and validate run records; each protocol's configured headline selection.
- `published`: the published reference numbers, read from a folder the caller names.
- `stats`: mean, standard error, IQM, stratified bootstrap, correlations.
- `build`: the board model (protocols -> tables -> rows -> entries, aggregates, what is missing).
- `render`: the markdown and CSV text; `figures`: the SVG figures.
- `outputs`: writing the files and `--check`; `__main__`: the CLI, the one place that names the folders.
"""
